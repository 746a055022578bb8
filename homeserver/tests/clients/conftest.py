"""Fixtures for the real-client suite: each test gets the `hearth` binary running on a fresh
data directory and port 0, once on SQLite and once on PostgreSQL (a fresh database per test).

HEARTH_BIN names the binary (scripts/test builds it); HEARTH_TEST_POSTGRES_URL the PostgreSQL
server (default postgres://127.0.0.1:5432/test). Without PostgreSQL the postgres variants skip
with the reason printed in pytest's summary (-rs)."""

import getpass
import os
import queue
import re
import secrets
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# The user is named explicitly: hearth's driver falls back to "anonymous" when $USER is unset.
POSTGRES_URL = os.environ.get(
    "HEARTH_TEST_POSTGRES_URL", f"postgres://{os.environ.get('PGUSER') or getpass.getuser()}@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("HEARTH_TEST_REQUIRE_POSTGRES") == "1"


class Server:
    """A running `hearth` process."""

    def __init__(self, process, base_url, data_dir, logs):
        self.process = process
        self.base_url = base_url
        self.data_dir = data_dir
        self.logs = logs

    def log_text(self):
        return "\n".join(self.logs)


def _hearth_binary():
    binary = os.environ.get("HEARTH_BIN", str(ROOT / "target" / "debug" / "hearth"))
    if not Path(binary).exists():
        pytest.fail(f"hearth binary not found at {binary}; build it with cargo build --bin hearth")
    return binary


def _create_postgres_database():
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - requirements.txt installs it
        pytest.skip(f"PostgreSQL variant skipped: psycopg not installed ({error})")
    name = "hearth_nio_" + secrets.token_hex(6)
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as error:
        reason = f"cannot connect to {POSTGRES_URL} ({error})"
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required (HEARTH_TEST_REQUIRE_POSTGRES=1) but {reason}")
        pytest.skip(f"PostgreSQL variant skipped: {reason}")
    return name, POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


def _drop_postgres_database(name):
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_server(extra_env=None, database_url="", data_dir=None):
    data_dir = data_dir or tempfile.mkdtemp(prefix="hearth-nio-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_") and k != "RUST_LOG"}
    env.update(
        {
            "HEARTH_LISTEN__CLIENT": "127.0.0.1:0",
            "HEARTH_DATA_DIR": data_dir,
            "HEARTH_DATABASE__URL": database_url,
            "HEARTH_RATE_LIMITS__ENABLED": "false",
            "HEARTH_LOG__FILTER": "info",
        }
    )
    env.update(extra_env or {})
    process = subprocess.Popen(
        [_hearth_binary()], env=env, cwd=data_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = queue.Queue()
    logs = []

    def pump():
        for line in process.stdout:
            logs.append(line.rstrip())
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 30
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            pytest.fail("hearth did not start:\n" + "\n".join(logs))
        match = re.search(r"client_api=(http://\S+)", line)
        if match:
            server = Server(process, match.group(1).strip('"'), data_dir, logs)
            server.extra_env, server.database_url = extra_env, database_url
            return server
        if process.poll() is not None:
            pytest.fail("hearth exited during start-up:\n" + "\n".join(logs))


def stop_server(server):
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise


def restart_server(server):
    """Stops the server and starts it again on the same data and database (its client port
    changes; listeners with fixed ports keep them)."""
    stop_server(server)
    fresh = start_server(server.extra_env, server.database_url, server.data_dir)
    server.process, server.base_url, server.logs = fresh.process, fresh.base_url, fresh.logs


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture
def make_server(backend):
    """Starts servers with optional extra environment; all stop (and their databases go) at the end."""
    started = []

    def make(extra_env=None):
        database, url = (None, "")
        if backend == "postgres":
            database, url = _create_postgres_database()
        server = start_server(extra_env, url)
        started.append((server, database))
        return server

    yield make
    for server, database in started:
        stop_server(server)
        assert server.process.returncode == 0, "hearth did not stop cleanly on SIGTERM:\n" + server.log_text()
        if database:
            _drop_postgres_database(database)


@pytest.fixture
def server(make_server):
    return make_server()
