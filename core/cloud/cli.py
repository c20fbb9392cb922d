"""``python -m core cloud ...``: serve a knowledge cloud, manage its tokens, publish, attach experiences, query,
pull and withdraw. The last line printed is the value a command names (the token, the task id); messages go to
stderr. Refusals exit non-zero with one line: 6 when the cloud refused or could not be reached (or the database
could not be used), 4 for an invalid fingerprint, 2 for unusable options or files. ``TFE_CLOUD_URL`` and
``TFE_CLOUD_TOKEN`` may replace ``--server`` and ``--token``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_CLOUD = 6
MAX_JSON_FILE_BYTES = 1024**2
DEFAULT_DATABASE = "cloud.db"


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _read_json_file(path: str, what: str) -> dict:
    """A small JSON object from a file; ValueError (exit 2) with one line otherwise."""
    file = Path(path)
    try:
        if not file.is_file():
            raise ValueError(f"{path}: no such file ({what})")
        if file.stat().st_size > MAX_JSON_FILE_BYTES:
            raise ValueError(f"{path}: larger than {MAX_JSON_FILE_BYTES:,} bytes; not a {what}")
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not a readable JSON {what} ({str(err)[:160]})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a {what} must be a JSON object")
    return value


def _check_output(path: Path, overwrite: bool) -> None:
    """Refuse an output path before any request is sent (core.cli.output_problem's rules, without importing
    core.cli, which imports this module)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ValueError(f"{path} already exists; choose another name or pass --overwrite")
    if not path.parent.is_dir():
        raise ValueError(f"folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write into {path.parent}")


def _checked(model, value: dict, source: str):
    """``value`` checked by a records model (core.cloud.records); ValueError with the first problem."""
    from pydantic import ValidationError

    try:
        return model.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{source}: field '{where}': {first['msg']}") from None


def _client(args):
    from core.cloud.client import CloudClient, settings
    url, token = settings(args.server, args.token)
    return CloudClient(url, token)


def _service(args, public_reads: bool = False):
    from core.cloud.database import create_cloud_engine, upgrade
    from core.cloud.service import CloudService
    engine = create_cloud_engine(args.database)
    upgrade(engine)
    return CloudService(engine, public_reads)


def cmd_serve(args) -> int:
    from core.cloud.api import serve
    serve(args.database, args.host, args.port, args.public_reads, args.max_body_mb * 1024**2,
          log=lambda message: print(message, file=sys.stderr, flush=True), stores=args.stores)
    return 0


def cmd_token_create(args) -> int:
    scopes = ("read",) if args.read_only else ("read", "publish", "admin") if args.admin else ("read", "publish")
    token = _service(args).create_token(args.institution, scopes)
    print(f"token {token.public_id} for '{args.institution}' ({' '.join(scopes)}); it is shown only now: give it to "
          f"the institution over a private channel; revoke it with 'cloud token revoke {token.public_id}'",
          file=sys.stderr)
    print(token.token)
    return 0


def cmd_token_revoke(args) -> int:
    institution = _service(args).revoke_token(args.token_id)
    print(f"revoked token {args.token_id} of '{institution}'", file=sys.stderr)
    return 0


def cmd_token_list(args) -> int:
    from core.text import printable
    for row in _service(args).list_tokens():
        state = f"revoked {row['revoked_at'][:16]}" if row["revoked_at"] else "active"
        print(f"{row['token']}  {printable(row['institution'], 80)}  {row['scopes']}  {state}")
    return 0


def cmd_publish(args) -> int:
    from core.cloud.records import TaskCard
    from core.fingerprint.fingerprint import Fingerprint

    card = _read_json_file(args.card, "task card") if args.card else {}
    card["name"] = args.name
    card = _checked(TaskCard, card, args.card or "--name").model_dump()
    fingerprint = Fingerprint.load(args.fingerprint)  # refused here already when invalid (the server checks again)
    with _client(args) as client:
        task = client.publish(fingerprint.to_bytes(), card)
    print(f"published '{args.name}' to {client.url} as {task['id']}", file=sys.stderr)
    print(task["id"])
    return 0


def cmd_experience_add(args) -> int:
    from core.cloud.records import ExperienceIn

    experience = _checked(ExperienceIn, _read_json_file(args.json, "experience"), args.json).model_dump()
    with _client(args) as client:
        stored = client.add_experience(args.task_id, experience)
    print(f"attached experience {stored['id']} to {args.task_id}", file=sys.stderr)
    print(stored["id"])
    return 0


def cmd_query(args) -> int:
    from core.cloud.output import query_lines, query_rows, write_csv
    from core.fingerprint.fingerprint import Fingerprint

    if args.csv:
        _check_output(Path(args.csv), args.overwrite)
    fingerprint = Fingerprint.load(args.fingerprint)
    print("note: a query sends your fingerprint to the server; 'cloud pull' then 'compare --catalogue' keeps it on "
          "this machine", file=sys.stderr)
    with _client(args) as client:
        result = client.query(fingerprint.to_bytes(), args.distance)
    print("\n".join(query_lines(result, client.url)))
    if args.csv:
        write_csv(query_rows(result), Path(args.csv))
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def cmd_pull(args) -> int:
    from core.cloud.snapshot import pull
    with _client(args) as client:
        catalogue = pull(client, Path(args.directory), Path(args.catalogue), args.probe,
                         log=lambda message: print(message, file=sys.stderr))
    print(f"pulled {len(catalogue.tasks)} task(s) from {client.url} into {catalogue.root}; rank them locally with "
          f"'python -m core compare FINGERPRINT --catalogue {catalogue.root}'", file=sys.stderr)
    print(catalogue.root)
    return 0


def cmd_withdraw(args) -> int:
    with _client(args) as client:
        client.withdraw(args.task_id)
    print(f"withdrew {args.task_id} from {client.url}", file=sys.stderr)
    print(args.task_id)
    return 0


def guarded(handler):
    """Cloud and database refusals as one line and exit 6; other errors go to core.cli.main's handling."""
    def run(args) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from core.cloud.client import CloudClientError
        from core.cloud.database import DatabaseUrlError
        from core.cloud.service import CloudError
        from core.text import printable
        try:
            return handler(args)
        except (CloudClientError, CloudError, DatabaseUrlError) as err:
            _err(str(err))
        except SQLAlchemyError as err:
            if os.environ.get("TFE_DEBUG"):
                raise
            _err(f"database problem: {printable(str(err).splitlines()[0] if str(err) else type(err).__name__, 300)}")
        return EXIT_CLOUD
    return run


def build_cloud_parser() -> argparse.ArgumentParser:
    """``python -m core`` with only the cloud commands (what core.cli.main uses for ``cloud ...``)."""
    parser = argparse.ArgumentParser(prog="python -m core", description="Task fingerprints: the knowledge cloud.")
    add_cloud_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def add_cloud_commands(commands) -> None:
    """The ``cloud`` command and its subcommands, on core.cli's subparsers."""
    from core.catalogue.store import DEFAULT_CATALOGUE
    from core.distances.registry import DISTANCES

    cloud = commands.add_parser("cloud", help="a knowledge cloud: publish fingerprints and what worked, rank others'")
    sub = cloud.add_subparsers(dest="cloud_command", required=True)

    def database_option(parser):
        parser.add_argument("--database", default=DEFAULT_DATABASE,
                            help="sqlite:///PATH or a file path (default cloud.db), or postgresql://USER@HOST/NAME")

    def server_options(parser):
        parser.add_argument("--server", help="the cloud's URL (default: $TFE_CLOUD_URL)")
        parser.add_argument("--token", help="your API token (default: $TFE_CLOUD_TOKEN)")

    def command(parser, handler):
        parser.set_defaults(handler=guarded(handler))

    serve = sub.add_parser("serve", help="run the cloud's HTTP API (migrates the database first)")
    database_option(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--public-reads", action="store_true", help="allow listing and querying without a token")
    serve.add_argument("--max-body-mb", type=int, default=16, help="largest request body accepted (MiB)")
    serve.add_argument("--stores", help="folder of the source stores that rank each frame's tasks (default: beside a "
                                        "SQLite file; a temporary folder for PostgreSQL, rebuilt at each start)")
    command(serve, cmd_serve)

    token = sub.add_parser("token", help="create, revoke or list API tokens (on the server's database)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="a new token for an institution (printed once, last line)")
    database_option(create)
    create.add_argument("--institution", required=True)
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--admin", action="store_true", help="may also change and withdraw others' tasks")
    scope.add_argument("--read-only", action="store_true", help="may only list and query")
    command(create, cmd_token_create)
    revoke = token_sub.add_parser("revoke", help="revoke a token by its id (the 16 hex digits after tfe_)")
    revoke.add_argument("token_id")
    database_option(revoke)
    command(revoke, cmd_token_revoke)
    listing = token_sub.add_parser("list", help="list tokens (ids, institutions, scopes; never the secrets)")
    database_option(listing)
    command(listing, cmd_token_list)

    publish = sub.add_parser("publish", help="publish a fingerprint with its card (prints the task id)")
    publish.add_argument("fingerprint")
    publish.add_argument("--name", required=True, help="the task's name on the card")
    publish.add_argument("--card", help="JSON card: modality, anatomy, classes, terms_of_reuse, contact")
    server_options(publish)
    command(publish, cmd_publish)

    experience = sub.add_parser("experience", help="attach what was measured to a task")
    experience_sub = experience.add_subparsers(dest="experience_command", required=True)
    add = experience_sub.add_parser("add", help="attach one experience (JSON, see README)")
    add.add_argument("task_id")
    add.add_argument("--json", required=True, help="the experience as a JSON file")
    server_options(add)
    command(add, cmd_experience_add)

    query = sub.add_parser("query", help="rank the cloud's tasks for your fingerprint (sends it to the server)")
    query.add_argument("fingerprint")
    query.add_argument("--csv", help="also write the ranking to this CSV file")
    query.add_argument("--overwrite", action="store_true")
    query.add_argument("--distance", choices=list(DISTANCES), default=None)
    server_options(query)
    command(query, cmd_query)

    pull = sub.add_parser("pull", help="download the comparable tasks as a catalogue (your fingerprint stays here)")
    pull.add_argument("directory")
    pull.add_argument("--catalogue", default=str(DEFAULT_CATALOGUE),
                      help="the local catalogue whose bin edges and settings the pulled tasks must share")
    pull.add_argument("--probe", help="probe layer (default: the catalogue's)")
    server_options(pull)
    command(pull, cmd_pull)

    withdraw = sub.add_parser("withdraw", help="withdraw your task (publisher or admin)")
    withdraw.add_argument("task_id")
    server_options(withdraw)
    command(withdraw, cmd_withdraw)
