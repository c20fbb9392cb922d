"""A real cloud for tests: a PostgreSQL cluster (15, else the newest installed) started from the machine's binaries
in a temporary folder (as the ``postgres`` user when run as root), and the cloud server as a separate process
(``python -m core cloud serve``) on 127.0.0.1 and a free port."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = next((path for path in [Path("/usr/lib/postgresql/15/bin"), *sorted(
    Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: -int(p.parent.name) if p.parent.name.isdigit() else 0)]
    if (path / "initdb").is_file()), Path("/usr/lib/postgresql/15/bin"))  # 15 (the Debian package here), else newest
SHIPPED = ROOT / "data" / "catalogue"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("TFE_CLOUD_URL", None)
    env.pop("TFE_CLOUD_TOKEN", None)
    return env


def run_cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env or cli_env(), text=True,
                          capture_output=True, timeout=timeout)


class Postgres:
    """A throw-away PostgreSQL 15 cluster; ``new_database()`` gives a fresh empty database's URL."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tfe-pg-"))
        self.port = free_port()
        self.count = 0

    def _as_postgres(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> "Postgres":
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-o",
                          f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200",
                          "-l", str(self.folder / "log"), "-w", "start")
        return self

    def new_database(self) -> str:
        import psycopg
        self.count += 1
        name = f"cloud{self.count}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class CloudServer:
    """``python -m core cloud serve`` as a child process."""

    def __init__(self, database: str, public_reads: bool = False, max_body_mb: int | None = None) -> None:
        self.database, self.public_reads, self.max_body_mb = database, public_reads, max_body_mb
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="tfe-cloud-", suffix=".log")[1])

    def start(self, timeout: float = 90) -> "CloudServer":
        command = [sys.executable, "-m", "core", "cloud", "serve", "--database", self.database, "--host",
                   "127.0.0.1", "--port", str(self.port)]
        command += ["--public-reads"] if self.public_reads else []
        command += ["--max-body-mb", str(self.max_body_mb)] if self.max_body_mb else []
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=cli_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cloud server exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"cloud server did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.unlink(missing_ok=True)


def make_tokens(database: str, *institutions: str, admin: tuple[str, ...] = (),
                read_only: tuple[str, ...] = ()) -> dict[str, str]:
    """{institution: token} created directly on the database (as the operator's 'cloud token create' does)."""
    from core.cloud.database import create_cloud_engine, upgrade
    from core.cloud.service import CloudService

    engine = create_cloud_engine(database)
    upgrade(engine)
    service = CloudService(engine)
    tokens = {}
    for name in (*institutions, *admin, *read_only):
        scopes = ("read", "publish", "admin") if name in admin else ("read",) if name in read_only else \
            ("read", "publish")
        tokens[name] = service.create_token(name, scopes).token
    engine.dispose()
    return tokens


def fingerprint_bytes(task: str, half: bool = False) -> bytes:
    path = SHIPPED / ("halves" if half else "fingerprints") / (f"{task}.a.npz" if half else f"{task}.npz")
    return path.read_bytes()
