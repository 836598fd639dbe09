"""Fixtures that start real parts: jackd (dummy backend) and ``jackgen run``.

Every fixture owns the process it starts and always stops it; at the end of the
session we check that no jackgen process or shared-memory segment of ours is
left behind (as supriya's CI does for scsynth).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from jackgen.daemon.cli.jackserver import DummyJack

REPO = Path(__file__).resolve().parent.parent
TEST_PREFIX = f"t{os.getpid()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def jack_server():
    """A private jackd (dummy backend, 48 kHz, 512 frames) for the whole session."""
    name = "jackgen-test"  # fixed: see DummyJack on jack2's server registry
    server = DummyJack(name, 48000, 512, realtime=False).start()
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        yield server
    finally:
        server.stop()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


@pytest.fixture
def own_jack():
    """Start a separate jackd for tests that change its settings or kill it."""
    started: list[DummyJack] = []
    old = os.environ.get("JACK_DEFAULT_SERVER")

    def start(rate: int = 48000, period: int = 512) -> DummyJack:
        name = f"jackgen-test-own-{len(started) + 1}"  # fixed names: see DummyJack
        server = DummyJack(name, rate, period, realtime=False).start()
        started.append(server)
        os.environ["JACK_DEFAULT_SERVER"] = name
        return server

    yield start
    for s in started:
        s.stop()
    if old is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = old


def unique_instance() -> str:
    return f"{TEST_PREFIX}-{uuid.uuid4().hex[:6]}"


class Jackgen:
    """A running ``jackgen run`` (control + engine + feeder) owned by a test."""

    def __init__(self, tmp: Path, extra_toml: str = "", session: str = "test", control_extra: str = "") -> None:
        self.instance = unique_instance()
        self.port = free_port()
        self.osc_port = free_port()
        self.tmp = tmp
        self.sessions = tmp / "sessions"
        self.config = tmp / "jackgen.toml"
        self.config.write_text(
            f'instance = "{self.instance}"\ndata_dir = "{tmp / "data"}"\n'
            f"[jack]\nautoconnect_master = false\n"
            f'[control]\nhttp_port = {self.port}\nosc_port = {self.osc_port}\nsessions_dir = "{self.sessions}"\n'
            f'session = "{session}"\nmedia_dirs = ["{tmp}"]\n{control_extra}\n'
            f"[supervisor]\nrestart_delay_s = 0.2\n" + extra_toml
        )
        self.url = f"http://127.0.0.1:{self.port}"
        token = control_extra.split('token = "', 1)[1].split('"', 1)[0] if 'token = "' in control_extra else ""
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.log = tmp / "jackgen.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> Jackgen:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(self.config)],
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, timeout_s, 0.1, "jackgen to become healthy")
        return self

    def _healthy(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"jackgen run exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            h = httpx.get(self.url + "/health", timeout=1, headers=self.headers).json()
            return bool(h.get("jack") and h.get("workers", {}).get("feeder") and (h.get("database") or {}).get("ok"))
        except httpx.HTTPError:
            return False

    def api(self, method: str, path: str, body: dict | None = None, expect: int | None = 200) -> dict:
        r = httpx.request(method, self.url + path, json=body, timeout=20, headers=self.headers)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path} -> {r.status_code}: {r.text}"
        return r.json()

    def status(self) -> dict:
        return self.api("GET", "/api/status")

    def sync(self) -> int:
        return self.api("POST", "/api/sync")["frame_time"]

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jackgen.daemon.cli", *args, "--config", str(self.config)],
            capture_output=True, text=True, timeout=60, check=check,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("jackgen run did not stop within 20 s of SIGTERM")


@pytest.fixture
def jackgen(jack_server, tmp_path):
    """Factory: ``jackgen(extra_toml)`` starts one; all are stopped after the test."""
    running: list[Jackgen] = []

    def start(extra_toml: str = "", session: str = "test", control_extra: str = "") -> Jackgen:
        jg = Jackgen(tmp_path, extra_toml, session, control_extra)
        running.append(jg)  # before start(): a start that times out is still stopped
        return jg.start()

    yield start
    for jg in running:
        jg.stop()


def _our_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    me = str(os.getpid())
    found = []
    for line in out.splitlines()[1:]:
        pid, ppid, args = line.split(None, 2)
        ours = "jackgen:" in args or "-n jackgen-test" in args or ("redis-server" in args and TEST_PREFIX in args)
        if ours and pid != me:
            found.append(line.strip())
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    yield
    time.sleep(0.5)
    leftovers = _our_processes()
    segments = [e for e in os.listdir("/dev/shm") if e.startswith(f"jackgen.{TEST_PREFIX}")]
    for line in leftovers:  # clean up so the next run starts clean, then fail
        os.kill(int(line.split()[0]), signal.SIGKILL)
    for e in segments:
        os.unlink(os.path.join("/dev/shm", e))
    assert not leftovers, f"processes left running after the tests: {leftovers}"
    assert not segments, f"shared-memory segments left behind: {segments}"


class RedisServer:
    """A private redis-server on a unix socket in a temp folder (append-only file on, as jackgen's own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sock = folder / "redis.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.sock), "--dir", str(self.folder),
             "--appendonly", "yes", "--save", "", "--loglevel", "warning"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        from jackgen.daemon.jobs.redisserver import wait_until_answers

        assert wait_until_answers(self.sock, 10), (self.folder / "redis.log").read_text()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster (Debian's binaries) in a temp folder, on a TCP port of its own:
    initdb + pg_ctl, run as the ``postgres`` user when the tests run as root (initdb refuses root)."""

    def __init__(self) -> None:
        import shutil
        import tempfile

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        self.bin = found[-1].parent if found else Path(shutil.which("initdb") or "/nonexistent").parent
        # the folder must be the postgres user's: a fresh one under /tmp, not pytest's (root's, 0700)
        self.dir = Path(tempfile.mkdtemp(prefix="jackgen-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/jackgen"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(argv)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)

    def init(self) -> PostgresCluster:
        if not (self.bin / "initdb").exists():
            pytest.fail("PostgreSQL is not installed: the test command (make test) installs Debian's postgresql")
        if self.as_postgres:
            subprocess.run(["chown", "postgres:postgres", str(self.dir)], check=True)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        return self.start(create_db=True)

    def start(self, create_db: bool = False) -> PostgresCluster:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        if create_db:
            self.createdb("jackgen")
        return self

    def createdb(self, name: str) -> str:
        """A new database in the cluster; its SQLAlchemy URL."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def destroy(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _cluster():
    pg = PostgresCluster().init()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL cluster for the session's library tests (each test uses its own database)."""
    yield from _cluster()


@pytest.fixture
def own_postgres():
    """A cluster a test may stop and start (the database going away under a running daemon)."""
    yield from _cluster()
