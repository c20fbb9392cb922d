"""The HTTP JSON API (FastAPI; the OpenAPI description is at ``/openapi.json``, readable at ``/docs``). Every
route is a thin call into :class:`core.cloud.service.CloudService`; every refusal is ``{"detail": "one line"}`` with
its status (401 no or bad token, 403 not allowed, 404 unknown or withdrawn, 409 nothing comparable, 413 body too
large, 422 invalid input).

Clients authenticate with ``Authorization: Bearer tfe_...``. Routes are plain functions, run by FastAPI in its
thread pool, so a slow query does not stall other requests."""
from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from core import __version__
from core.cloud.bodylimit import DEFAULT_MAX_BODY_BYTES, BodyLimit
from core.cloud.records import CardUpdate, ExperienceIn, PublishRequest, QueryRequest
from core.cloud.service import Caller, CloudError, CloudService

API = "/api/v1"


def _validation_line(err: RequestValidationError) -> str:
    first = err.errors()[0] if err.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"field '{where}': {first.get('msg', 'invalid')}{more}"


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Who sends the request, from its bearer token (see CloudService.authenticate)."""
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise CloudError(401, "send the token as 'Authorization: Bearer tfe_...'")
        token = value.strip()
    return request.app.state.service.authenticate(token)


Who = Annotated[Caller, Depends(caller)]


def create_app(service: CloudService, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="Task Fingerprint Explorer knowledge cloud", version=__version__,
                  description="Institutions publish task fingerprints (no images) with a card and what worked; "
                              "others rank them against their own task. A query sends your fingerprint to this "
                              "server; GET the tasks and their fingerprints (pull) to rank on your own machine "
                              "instead.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(CloudError)
    async def cloud_error(_request: Request, err: CloudError) -> JSONResponse:
        return JSONResponse({"detail": err.message}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(err)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code)

    @app.get(f"{API}/health", tags=["service"])
    def health() -> dict:
        """No token needed: is the server up, and does it allow reads without a token?"""
        return {"status": "ok", "version": __version__, "public_reads": service.public_reads}

    @app.get(f"{API}/tasks", tags=["tasks"])
    def list_tasks(who: Who, frame: str | None = None) -> list[dict]:
        """Published tasks (withdrawn ones never), each with its card, publisher, fingerprint identity and
        experiences; ``frame`` keeps only the tasks comparable with one fingerprint identity."""
        return service.tasks(who, frame)

    @app.post(f"{API}/tasks", tags=["tasks"], status_code=201)
    def publish(request: PublishRequest, response: Response, who: Who) -> dict:
        """Publish a task: the fingerprint is checked by the strict validator first; a retry with the same
        request_id returns the task it made (200) instead of a second one."""
        task, created = service.publish(who, request)
        response.status_code = 201 if created else 200
        return task

    @app.get(f"{API}/tasks/{{task_id}}", tags=["tasks"])
    def get_task(task_id: str, who: Who) -> dict:
        return service.task(who, task_id)

    @app.get(f"{API}/tasks/{{task_id}}/fingerprint", tags=["tasks"],
             response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
    def get_fingerprint(task_id: str, who: Who) -> Response:
        """The fingerprint file (the format of core/fingerprint/fingerprint.py)."""
        return Response(service.fingerprint_bytes(who, task_id), media_type="application/octet-stream")

    @app.patch(f"{API}/tasks/{{task_id}}", tags=["tasks"])
    def update_card(task_id: str, update: CardUpdate, who: Who) -> dict:
        """Replace the card (publisher or admin only)."""
        return service.update_card(who, task_id, update)

    @app.delete(f"{API}/tasks/{{task_id}}", tags=["tasks"])
    def withdraw(task_id: str, who: Who) -> dict:
        """Withdraw a task (publisher or admin only): it leaves every list and query; the audit log keeps it."""
        return service.withdraw(who, task_id)

    @app.post(f"{API}/tasks/{{task_id}}/experiences", tags=["experiences"], status_code=201)
    def add_experience(task_id: str, experience: ExperienceIn, who: Who) -> dict:
        """Attach what was measured when something was borrowed for this task."""
        return service.add_experience(who, task_id, experience)

    @app.post(f"{API}/query", tags=["ranking"])
    def query(request: QueryRequest, who: Who) -> dict:
        """Rank the comparable published tasks as sources for the posted fingerprint (it is sent to this server;
        pull the tasks instead to keep it on your machine)."""
        return service.query(who, request.fingerprint, request.distance)

    @app.get(f"{API}/audit", tags=["service"])
    def audit(who: Who, limit: int = 1000) -> list[dict]:
        """The newest audit entries (admin tokens only)."""
        return service.audit(who, max(1, min(limit, 100_000)))

    return app


def serve(database: str, host: str, port: int, public_reads: bool = False,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log=print, stores: str | None = None) -> None:
    """Migrate the database to the newest schema, then serve the API with uvicorn until stopped. ``stores``: the
    folder of the frames' source stores (default :func:`core.cloud.frames.default_folder`)."""
    import uvicorn

    from core.cloud.database import create_cloud_engine, shown_url, upgrade
    from core.cloud.frames import FrameStores, default_folder

    engine = create_cloud_engine(database)
    upgrade(engine)
    folder = stores or default_folder(database)
    app = create_app(CloudService(engine, public_reads, FrameStores(folder)), max_body_bytes)
    log(f"knowledge cloud on http://{host}:{port} (database {shown_url(database)}; source stores in {folder}; API "
        f"description at /openapi.json and /docs; reads {'public' if public_reads else 'need a token'}); put TLS in "
        "front of it (see README)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if stores is None and folder.name.startswith("tfe-cloud-stores-"):  # a temporary folder of this run
            shutil.rmtree(folder, ignore_errors=True)
