"""Engines and migrations. ``sqlite:///PATH`` (the default: a file, nothing to install) or ``postgresql://...``
(mapped to the psycopg 3 driver); the schema comes from the Alembic migrations in ``core/cloud/migrations``, applied
at ``serve`` start and before a token is created.

SQLite: WAL journal (readers do not wait for the writer), foreign keys on, a 30 s busy timeout, and write
transactions begin with ``BEGIN IMMEDIATE`` (a deferred transaction that later writes can fail at once with
"database is locked" when another writer holds the lock; an immediate one waits its turn)."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
WRITE_OPTION = "tfe_write"


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message says why."""


def driver_url(url: str) -> str:
    """The SQLAlchemy URL for a user's database URL: ``postgresql://`` and ``postgres://`` use psycopg 3; a plain
    path is taken as a SQLite file."""
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("postgresql+psycopg", "sqlite"):
        return url
    raise DatabaseUrlError(f"database URL scheme '{scheme}' is not supported; use sqlite:///PATH or "
                           "postgresql://USER@HOST:PORT/NAME")


def shown_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(driver_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unreadable URL>"


def create_cloud_engine(url: str) -> Engine:
    """An engine for ``url`` (see :func:`driver_url`); SQLite gets the settings described in the module docstring."""
    try:
        parsed = make_url(driver_url(url))
    except ArgumentError as err:
        raise DatabaseUrlError(f"database URL is not valid ({err})") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseUrlError("an in-memory SQLite database would vanish with the server; give a file path "
                                   "(sqlite:///cloud.db)")
        folder = Path(parsed.database).resolve().parent
        if not folder.is_dir():
            raise DatabaseUrlError(f"folder {folder} for the SQLite database does not exist; create it first")
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=8, max_overflow=32)
        _sqlite_settings(engine)
        return engine
    return create_engine(parsed, pool_size=8, max_overflow=32, pool_pre_ping=True)


def _sqlite_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITE_OPTION)
                                   else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions are write transactions (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def upgrade(engine: Engine) -> None:
    """Bring the database's schema to the newest migration (creates every table on an empty database)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with writer(engine).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
