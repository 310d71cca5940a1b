"""Launchers for every process of the local stack, one class per kind of service."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import redis

from devstack.ports import HOST
from devstack.process import ManagedProcess, ServiceError

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_ID = "valorize-local"
TASKS_LOCATION = "us-central1"
BUCKET = "valorize-statements"

# gcloud-tasks-emulator 0.6.2 needs protobuf<5, which today's Google clients refuse, and an
# unpinned google-cloud-tasks resolves to 1.5.1, which does not import: keep all three pinned.
TASKS_EMULATOR_REQUIREMENTS = (
    "gcloud-tasks-emulator==0.6.2",
    "google-cloud-tasks>=2,<3",
    "protobuf<5",
)
# The emulator re-queues a failed task immediately and forever by default.
TASKS_MAX_RETRIES = 5

# urllib would honour *_proxy variables; loopback probes must never go through a proxy.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def venv_bin(name: str) -> str:
    """Path of a console script installed next to the running interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} is not installed in {Path(sys.executable).parent} nor on PATH")
    return found


def http_status(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    try:
        with _http.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tcp_open(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _python_env() -> dict[str, str]:
    # Our own modules (gateway, SMTP sink) run as ``python -m devstack.x`` from any cwd.
    path = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
    }


class FirestoreEmulator(ManagedProcess):
    name = "firestore"

    def __init__(self, port: int, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.port = port

    def command(self) -> Sequence[str]:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise ServiceError(
                "gcloud is not on PATH; install the Google Cloud CLI and run "
                "`gcloud components install cloud-firestore-emulator` (needs Java 11+)"
            )
        return [gcloud, "emulators", "firestore", "start", f"--host-port={HOST}:{self.port}"]

    def is_ready(self) -> bool:
        status, body = http_status(f"http://{HOST}:{self.port}/")
        return status == 200 and body.strip() == b"Ok"

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"


class RedisServer(ManagedProcess):
    name = "redis"

    def __init__(self, port: int, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.port = port

    def command(self) -> Sequence[str]:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise ServiceError("redis-server is not on PATH (apt-get install redis-server)")
        return [
            redis_server,
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip

    def cwd(self) -> Path:
        return self.log_dir

    def is_ready(self) -> bool:
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


class StorageEmulator(ManagedProcess):
    name = "storage"

    def __init__(self, port: int, log_dir: Path, bucket: str = BUCKET) -> None:
        super().__init__(log_dir)
        self.port = port
        self.bucket = bucket

    def command(self) -> Sequence[str]:
        return [
            venv_bin("gcp-storage-emulator"), "start",
            "--host", HOST,
            "--port", str(self.port),
            "--in-memory",
            "--default-bucket", self.bucket,
        ]  # fmt: skip

    def is_ready(self) -> bool:
        # The default bucket is created after the socket opens; wait for the bucket itself.
        status, _ = http_status(f"{self.url}/storage/v1/b/{self.bucket}")
        return status == 200

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def ensure_tasks_venv(path: Path | None = None) -> Path:
    """Create (once) the private virtualenv of gcloud-tasks-emulator; return its python.

    A marker file records the requirements it was built with, so changed pins rebuild it and a
    half-built venv (interrupted install) is not mistaken for a good one. An flock serialises
    concurrent stacks (e.g. pytest-xdist workers) building it at the same time.
    """
    venv = path or REPO_ROOT / ".local" / "venvs" / "tasks-emulator"
    python = venv / "bin" / "python"
    marker = venv / ".devstack-requirements"
    wanted = "\n".join(TASKS_EMULATOR_REQUIREMENTS)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return python
        uv = shutil.which("uv") or venv_bin("uv")
        steps = [
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(python),
             *TASKS_EMULATOR_REQUIREMENTS],
        ]  # fmt: skip
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ServiceError(
                    f"building the tasks emulator venv failed: {' '.join(step)}\n"
                    f"{result.stdout}{result.stderr}"
                )
        marker.write_text(wanted)
    return python


class TasksEmulator(ManagedProcess):
    name = "tasks"

    def __init__(
        self,
        port: int,
        log_dir: Path,
        queues: Sequence[str],
        venv: Path | None = None,
        dispatch: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        # With ``dispatch`` (queue id -> rate, concurrency, max_attempts, min_backoff,
        # max_backoff, max_doublings) the shim dispatches those queues as Cloud Tasks does
        # (concurrently, paced, retried after a backoff) and writes their counts to
        # :attr:`stats_path`; without it, the emulator's own one-at-a-time dispatch.
        env = (
            {
                "VALORIZE_TASKS_DISPATCH": json.dumps(dispatch),
                "VALORIZE_TASKS_STATS": str(log_dir / "tasks-dispatch.json"),
            }
            if dispatch
            else {}
        )
        super().__init__(log_dir, env)
        self.port = port
        # Full queue paths, one per registry queue: a task on any other queue fails as in
        # production (the emulator answers FAILED_PRECONDITION).
        self.queues = list(queues)
        self.venv = venv
        self._python: Path | None = None

    def prepare(self) -> None:
        self._python = ensure_tasks_venv(self.venv)

    def command(self) -> Sequence[str]:
        if self._python is None:
            raise RuntimeError("prepare() must build the venv first")
        shim = Path(__file__).with_name("_tasks_emulator_shim.py")
        return [
            str(self._python), "-W", "ignore::FutureWarning", str(shim), HOST,
            "start",
            "--port", str(self.port),
            *[arg for queue in self.queues for arg in ("--default-queue", queue)],
            "--max-retries", str(TASKS_MAX_RETRIES),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        return tcp_open(self.port)

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def stats_path(self) -> Path:
        """Per-queue dispatch counts, rewritten every 0.2 s (only with ``dispatch``)."""
        return self.log_dir / "tasks-dispatch.json"


class SmtpSink(ManagedProcess):
    name = "smtp"

    def __init__(self, port: int, http_port: int, log_dir: Path) -> None:
        super().__init__(log_dir, _python_env())
        self.port = port
        self.http_port = http_port
        self.maildir = log_dir / "mail"

    def command(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "devstack.smtp_sink",
            "--host", HOST,
            "--port", str(self.port),
            "--http-port", str(self.http_port),
            "--maildir", str(self.maildir),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        return tcp_open(self.port) and tcp_open(self.http_port)

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"


class FunctionServer(ManagedProcess):
    """One Cloud Function under functions-framework, answering ``/api/<name>/...``."""

    def __init__(
        self,
        folder: str,
        target: str,
        port: int,
        log_dir: Path,
        env: Mapping[str, str],
        functions_dir: Path | None = None,
        unset_env: Iterable[str] = (),
        executable: Path | None = None,
    ) -> None:
        super().__init__(log_dir, env, unset_env)
        self.name = f"function-{folder}"
        self.folder = folder
        self.target = target
        self.port = port
        self.source_dir = (functions_dir or REPO_ROOT / "functions") / folder
        # functions-framework of another environment (the artifact test's fresh venvs).
        self.executable = executable

    def command(self) -> Sequence[str]:
        source = self.source_dir / "main.py"
        if not source.exists():
            raise ServiceError(f"function {self.folder}: {source} does not exist")
        return [
            str(self.executable or venv_bin("functions-framework")),
            "--target", self.target,
            "--source", str(source),
            "--host", HOST,
            "--port", str(self.port),
        ]  # fmt: skip

    def cwd(self) -> Path:
        # Cloud Functions runs with the function's source folder as working directory.
        return self.source_dir

    def is_ready(self) -> bool:
        status, _ = http_status(f"{self.url}/api/{self.folder}/healthz")
        return status == 200

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class GatewayServer(ManagedProcess):
    name = "gateway"

    def __init__(
        self,
        port: int,
        log_dir: Path,
        routes: Mapping[str, str],
        realtime: Sequence[str] = (),
        blocked: Sequence[str] = (),
    ) -> None:
        super().__init__(log_dir, _python_env())
        self.port = port
        self.routes = dict(routes)
        self.realtime = list(realtime)
        self.blocked = list(blocked)

    def command(self) -> Sequence[str]:
        return [
            sys.executable, "-m", "devstack.gateway",
            "--host", HOST,
            "--port", str(self.port),
            "--routes", json.dumps(self.routes),
            "--realtime", json.dumps(self.realtime),
            "--blocked", json.dumps(self.blocked),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        status, _ = http_status(f"{self.url}/healthz")
        return status == 200

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class RealtimeInstance(ManagedProcess):
    """One instance of realtime_server/ (Socket.IO under gunicorn), as Cloud Run runs it."""

    def __init__(
        self,
        index: int,
        port: int,
        log_dir: Path,
        env: Mapping[str, str],
        worker: str = "eventlet",
        unset_env: Iterable[str] = (),
        source_dir: Path | None = None,
    ) -> None:
        super().__init__(log_dir, {**env, "VALORIZE_REALTIME_WORKER": worker}, unset_env)
        self.name = f"realtime-{index}"
        self.port = port
        self.worker = worker
        self.source_dir = source_dir or REPO_ROOT / "realtime_server"

    def command(self) -> Sequence[str]:
        return [
            venv_bin("gunicorn"),
            "--config", str(self.source_dir / "gunicorn.conf.py"),
            "--bind", f"{HOST}:{self.port}",
            "wsgi:app",
        ]  # fmt: skip

    def cwd(self) -> Path:
        # As in the container: the app's modules sit in the working directory.
        return self.source_dir

    def is_ready(self) -> bool:
        status, _ = http_status(f"{self.url}/healthz")
        return status == 200

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"
