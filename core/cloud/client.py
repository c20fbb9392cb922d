"""Python client of the cloud's API (httpx). Every failure raises :class:`CloudClientError` with one line naming
the server and the reason (the server's own ``detail`` when it sent one). Responses are read with a size cap (the
server is another institution's machine)."""
from __future__ import annotations

import json
import os
import time
import uuid

import httpx

from core.cloud.records import encode_fingerprint
from core.fingerprint.validation import MAX_FILE_BYTES
from core.text import printable

API = "/api/v1"
URL_VARIABLE, TOKEN_VARIABLE = "TFE_CLOUD_URL", "TFE_CLOUD_TOKEN"
MAX_JSON_BYTES = 256 * 1024**2
PUBLISH_ATTEMPTS = 3


class CloudClientError(Exception):
    """A request failed; ``status`` is the HTTP status (None when the server was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def settings(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The server URL and token from the options, else from TFE_CLOUD_URL / TFE_CLOUD_TOKEN."""
    url = url or os.environ.get(URL_VARIABLE)
    if not url:
        raise CloudClientError(f"no server given: pass --server URL or set {URL_VARIABLE}")
    if not url.startswith(("http://", "https://")):
        raise CloudClientError(f"server URL must start with https:// (or http:// on a trusted network), got "
                               f"'{printable(url, 120)}'")
    return url.rstrip("/"), token or os.environ.get(TOKEN_VARIABLE) or None


class CloudClient:
    def __init__(self, url: str, token: str | None, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url + API, headers=headers, timeout=timeout_s,
                                  follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CloudClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, limit: int = MAX_JSON_BYTES, **kwargs) -> tuple[int, bytes]:
        try:
            with self._http.stream(method, path, **kwargs) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise CloudClientError(f"{self.url}: answer to {method} {path} is larger than "
                                               f"{limit:,} bytes; refused", response.status_code)
                status = response.status_code
        except httpx.HTTPError as err:
            raise CloudClientError(f"cannot reach {self.url} ({type(err).__name__}: {printable(err, 200)})") from None
        if status >= 400:
            try:
                detail = json.loads(body).get("detail", "")
            except (ValueError, AttributeError):
                detail = bytes(body[:200]).decode("utf-8", "replace")
            raise CloudClientError(f"{self.url} refused {method} {path} ({status}): {printable(detail, 600)}", status)
        return status, bytes(body)

    def _json(self, method: str, path: str, **kwargs):
        _, body = self._request(method, path, **kwargs)
        try:
            return json.loads(body)
        except ValueError:
            raise CloudClientError(f"{self.url}: answer to {method} {path} is not JSON") from None

    # ------------------------------------------------------------------ the API
    def publish(self, fingerprint: bytes, card: dict, request_id: str | None = None) -> dict:
        """Publish; retried on a lost connection with the same request id, so it is made at most once."""
        body = {"request_id": request_id or uuid.uuid4().hex, "card": card,
                "fingerprint": encode_fingerprint(fingerprint)}
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return self._json("POST", "/tasks", json=body)
            except CloudClientError as err:
                if err.status is not None or attempt == PUBLISH_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def tasks(self, frame: str | None = None) -> list[dict]:
        return self._json("GET", "/tasks", params={"frame": frame} if frame else None)

    def task(self, task_id: str) -> dict:
        return self._json("GET", f"/tasks/{_segment(task_id)}")

    def fingerprint(self, task_id: str) -> bytes:
        return self._request("GET", f"/tasks/{_segment(task_id)}/fingerprint", limit=MAX_FILE_BYTES)[1]

    def update_card(self, task_id: str, card: dict) -> dict:
        return self._json("PATCH", f"/tasks/{_segment(task_id)}", json={"card": card})

    def withdraw(self, task_id: str) -> dict:
        return self._json("DELETE", f"/tasks/{_segment(task_id)}")

    def add_experience(self, task_id: str, experience: dict) -> dict:
        return self._json("POST", f"/tasks/{_segment(task_id)}/experiences", json=experience)

    def query(self, fingerprint: bytes, distance: str | None = None) -> dict:
        return self._json("POST", "/query", json={"fingerprint": encode_fingerprint(fingerprint),
                                                  "distance": distance})

    def audit(self, limit: int = 1000) -> list[dict]:
        return self._json("GET", "/audit", params={"limit": limit})


def _segment(task_id: str) -> str:
    """A task id as one URL path segment (ids are letters, digits and '_'; anything else is refused here)."""
    if not task_id or not all(c.isascii() and (c.isalnum() or c in "_-") for c in task_id) or len(task_id) > 40:
        raise CloudClientError(f"'{printable(task_id, 60)}' is not a task id (letters, digits, '_', '-')")
    return task_id
