"""The artifacts that ship, run as they would in production: each function's archive from
``functions/package.py`` unpacked into a fresh virtual environment holding only its own
requirements.txt, started with that environment's functions-framework against the test stack's
emulators, with the registry-derived environment infra/cdktf gives it in production (its queues,
its internal callers and audience, OIDC instead of the local shared secret).

Tasks the artifacts enqueue go through the Cloud Tasks emulator to a capture server standing in
for their target functions, so a test sees exactly what was enqueued; internal calls carry ID
tokens signed by a test key whose certificate is served on loopback (tests/support/oidc.py).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.ports import HOST, free_ports
from devstack.services import FunctionServer
from devstack.stack import LOCAL_INVOKERS, STACK_ENV_KEYS, Stack
from functions import package
from functions.registry import (
    FUNCTIONS,
    INTERNAL_AUDIENCES_ENV,
    TASKS_INVOKER,
    Function,
    runtime_env,
)
from tests.support.oidc import SigningKey, certs_server

pytestmark = pytest.mark.artifact

# The invoker service accounts, with the emails devstack gives them.
INVOKERS = LOCAL_INVOKERS
# How many archives are installed and started at once (2 cores: installs are I/O and uv's
# cache, startup is CPU).
PARALLEL = 4


def audience(name: str) -> str:
    """The production-shaped URL the function's tasks and scheduler jobs are addressed to."""
    return f"https://{name}-123456789012.us-central1.run.app"


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class CaptureServer:
    """Stands in for every task target: records what Cloud Tasks delivers, answers 200."""

    url: str = ""
    seen: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Captured:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for item in self.seen:
                    if predicate(item):
                        return item
            time.sleep(0.1)
        with self.lock:
            paths = [c.path for c in self.seen]
        raise AssertionError(f"no matching task delivered in {timeout:.0f} s; saw {paths}")


@pytest.fixture(scope="session")
def capture() -> Iterator[CaptureServer]:
    state = CaptureServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.seen.append(Captured(self.path, dict(self.headers), json.loads(raw or b"{}")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://{HOST}:{server.server_port}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture(scope="session")
def certs_url(signing_key: SigningKey) -> Iterator[str]:
    with certs_server(signing_key) as url:
        yield url


@dataclass
class Artifact:
    function: Function
    url: str
    server: FunctionServer
    install_seconds: float

    @property
    def audience(self) -> str:
        return audience(self.function.name)


def artifact_env(stack: Stack, function: Function, capture_url: str, certs: str) -> dict[str, str]:
    env = {k: v for k, v in stack.env.items() if k != "VALORIZE_INTERNAL_SECRET"}
    env.update(runtime_env(function, INVOKERS))
    env[INTERNAL_AUDIENCES_ENV] = audience(function.name)
    env["VALORIZE_OIDC_CERTS_URL"] = certs
    # As infra/cdktf sets them: the invoker the function's tasks carry, and where each task
    # target lives (here: the capture server).
    env["TASKS_INVOKER_SA"] = INVOKERS[TASKS_INVOKER]
    for name, other in FUNCTIONS.items():
        if other.task_target:
            env[f"FUNCTION_URL_{name.upper()}"] = capture_url
    return env


def start(
    stack: Stack,
    function: Function,
    archive: Path,
    root: Path,
    port: int,
    capture_url: str,
    certs: str,
) -> Artifact:
    source, seconds = package.install(archive, root)
    server = FunctionServer(
        function.name,
        function.entry_point,
        port,
        root / "logs",
        artifact_env(stack, function, capture_url, certs),
        unset_env=(*STACK_ENV_KEYS, *package.HOST_LEAKS),
        executable=root / "venv" / "bin" / "functions-framework",
    )
    # The unpacked archive is the function's folder, as the buildpack's workspace.
    server.source_dir = source
    server.start()
    try:
        server.wait_ready(60)
    except BaseException:
        server.stop()
        raise
    return Artifact(function, server.url, server, seconds)


@pytest.fixture(scope="session")
def artifacts(
    stack: Stack,
    tmp_path_factory: pytest.TempPathFactory,
    capture: CaptureServer,
    certs_url: str,
) -> Iterator[dict[str, Artifact]]:
    root = tmp_path_factory.mktemp("artifacts")
    began = time.monotonic()
    archives = {name: package.build(name, root / "dist") for name in FUNCTIONS}
    ports = dict(zip(FUNCTIONS, free_ports(len(FUNCTIONS)), strict=True))
    running: dict[str, Artifact] = {}
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {
            name: pool.submit(
                start,
                stack,
                FUNCTIONS[name],
                archives[name],
                root / name,
                ports[name],
                capture.url,
                certs_url,
            )
            for name in FUNCTIONS
        }
        errors = []
        for name, future in futures.items():
            try:
                running[name] = future.result()
            except Exception as error:  # noqa: BLE001 - every failure is reported below
                errors.append(f"{name}: {error}")
    try:
        assert not errors, "\n\n".join(errors)
        print(
            f"\n{len(running)} artifacts installed and started in "
            f"{time.monotonic() - began:.1f} s (slowest install "
            f"{max(a.install_seconds for a in running.values()):.1f} s)"
        )
        yield running
    finally:
        for artifact in running.values():
            artifact.server.stop()
