"""Fixtures of the cloud tests: a database on SQLite or on a real PostgreSQL 15 cluster (started once per session
from the machine's binaries, stopped at the end), and a cloud server process on it."""
from __future__ import annotations

import pytest

from tests.cloud.cloud_harness import PG_BIN, CloudServer, Postgres


@pytest.fixture(scope="session")
def postgres():
    if not (PG_BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL binaries not installed ({PG_BIN}); ./run.sh test installs Debian's postgresql")
    cluster = Postgres().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    """A fresh, empty database URL of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def sqlite_database(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cloud.db'}"


@pytest.fixture
def server_factory():
    started = []

    def start(database: str, **options) -> CloudServer:
        server = CloudServer(database, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
