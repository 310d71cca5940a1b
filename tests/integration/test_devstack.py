"""The local cloud runner: ports, process lifecycle, gateway, SMTP sink, CLI and demo seed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import requests
from aiohttp import web

from devstack import PortInUseError, Ports, Stack, StackConfig, StackStartError
from devstack.ports import ensure_port_free, free_port, free_ports
from devstack.seed import plan
from devstack.services import REPO_ROOT, GatewayServer, SmtpSink
from functions.registry import FUNCTIONS

pytestmark = pytest.mark.integration

# A stand-in for every real function: answers the contract paths the seed uses, validates what
# it is sent, and reports its environment so the test can check what the stack passed.
FAKE_FUNCTION = """
import os
import uuid

import functions_framework

NAME = {name!r}
ENV_KEYS = {env_keys!r}
CATEGORIES = [
    {{"id": "c-income", "name": "Receitas", "type": "income"}},
    {{"id": "c-food", "name": "Alimentação", "type": "expense"}},
    {{"id": "c-other", "name": "Outros", "type": "expense"}},
]


def problem(status, detail):
    return {{"type": "about:blank", "title": "Error", "status": status, "detail": detail}}, status


@functions_framework.http
def {target}(request):
    prefix = f"/api/{{NAME}}"
    path = request.path.removeprefix(prefix)
    if path == "/healthz":
        return {{"status": "ok"}}
    if path == "/env":
        return {{key: os.environ.get(key) for key in ENV_KEYS}}
    if NAME == "auth" and path == "/register" and request.method == "POST":
        body = request.get_json()
        assert body["email"] and body["password"] and body["preferred_currency"] == "BRL"
        return {{"user": {{"id": "u1", "email": body["email"]}}, "token": "tok-demo"}}, 201
    if request.headers.get("Authorization") != "Bearer tok-demo":
        return problem(401, "bad token")
    if NAME == "categories" and path == "" and request.method == "GET":
        return {{"data": CATEGORIES, "next_cursor": None}}
    if NAME == "accounts" and path == "" and request.method == "POST":
        body = request.get_json()
        assert body["type"] in ("checking", "savings", "credit") and body["currency"] == "BRL"
        return {{**body, "id": f"a-{{uuid.uuid4().hex[:8]}}"}}, 201
    if NAME == "transactions" and request.method == "POST":
        body = request.get_json()
        if path == "/transfers":
            assert body["amount"] > 0 and body["from_account_id"] != body["to_account_id"]
            return {{"id": "t-transfer"}}, 201
        assert isinstance(body["amount"], int) and body["amount"] != 0
        assert len(body["date"]) == 10 and body["account_id"].startswith("a-")
        if "splits" in body:
            assert sum(s["amount"] for s in body["splits"]) == body["amount"]
        return {{**body, "id": f"t-{{uuid.uuid4().hex[:8]}}"}}, 201
    return problem(404, f"fake {{NAME}} has no {{request.method}} {{request.path}}")
"""

ENV_KEYS = [
    "GOOGLE_CLOUD_PROJECT",
    "FIRESTORE_EMULATOR_HOST",
    "REDIS_URL",
    "STORAGE_EMULATOR_HOST",
    "VALORIZE_BUCKET",
    "TASKS_EMULATOR_HOST",
    "VALORIZE_TASK_QUEUES",
    "VALORIZE_INTERNAL_AUDIENCES",
    "SMTP_HOST",
    "SMTP_PORT",
    "VALORIZE_INTERNAL_SECRET",
    "VALORIZE_FUNCTION_URLS",
    "VALORIZE_GATEWAY_URL",
    "VALORIZE_CORS_ORIGINS",
]


def write_fake_functions(root: Path) -> Path:
    for name, function in FUNCTIONS.items():
        folder = root / name
        folder.mkdir(parents=True)
        source = FAKE_FUNCTION.format(name=name, target=function.entry_point, env_keys=ENV_KEYS)
        (folder / "main.py").write_text(source)
    return root


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def processes() -> list[tuple[int, int, int, str]]:
    """(pid, ppid, pgid, command) of every live, non-zombie process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # The command name in parentheses may contain spaces: split after its closing paren.
        state, ppid, pgid = stat.rsplit(")", 1)[1].split()[:3]
        if state != "Z":
            found.append((int(entry.name), int(ppid), int(pgid), cmdline))
    return found


def leftovers(pgids: set[int]) -> list[str]:
    return [f"{pid} {cmd}" for pid, _, pgid, cmd in processes() if pgid in pgids]


def wait_until_gone(pgids: set[int], timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := leftovers(pgids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# -- ports ------------------------------------------------------------------------------------


def test_busy_port_is_refused_with_a_clear_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            ensure_port_free(port, "gateway")
        assert str(caught.value) == (
            f"port {port} (gateway) is already in use; "
            "pass --gateway-port or set VALORIZE_GATEWAY_PORT"
        )
        # The stack checks before it starts anything.
        stack = Stack(StackConfig(functions=[], ports=Ports(gateway=port, redis=0)))
        with pytest.raises(PortInUseError, match=f"port {port} \\(gateway\\)"):
            stack.start()
        assert stack.pids() == []


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    ensure_port_free(ports[0], "redis")


# -- a real stack -----------------------------------------------------------------------------


def test_stack_with_firestore_and_redis_starts_answers_and_stops_clean(tmp_path: Path) -> None:
    config = StackConfig(
        firestore=True,
        redis=True,
        storage=False,
        tasks=False,
        smtp=False,
        functions=[],
        gateway=False,
        log_dir=tmp_path,
    )
    with Stack(config) as stack:
        urls = stack.urls
        assert urls.firestore_host and urls.redis_url and urls.base_url is None
        assert requests.get(f"http://{urls.firestore_host}/", timeout=5).text.strip() == "Ok"
        client = redis.Redis.from_url(urls.redis_url)
        client.set("k", "v")
        stack.reset()
        assert client.get("k") is None
        client.close()
        assert stack.env["FIRESTORE_EMULATOR_HOST"] == urls.firestore_host
        assert "STORAGE_EMULATOR_HOST" not in stack.env
        pgids = set(stack.pids())
        assert len(pgids) == 2
        # gcloud runs the emulator as a java grandchild: it must be in the group we kill.
        assert any("java" in cmd for cmd in leftovers(pgids))
    assert not any(group_alive(pgid) for pgid in pgids)
    assert wait_until_gone(pgids) == []
    stack.stop()  # idempotent


def test_a_process_dying_at_startup_fails_with_its_log_tail(tmp_path: Path) -> None:
    broken = tmp_path / "functions" / "auth"
    broken.mkdir(parents=True)
    (broken / "main.py").write_text("raise RuntimeError('boom: misconfigured')\n")
    config = StackConfig(
        firestore=False,
        redis=False,
        storage=False,
        tasks=False,
        smtp=False,
        functions=["auth"],
        gateway=False,
        functions_dir=tmp_path / "functions",
        log_dir=tmp_path / "logs",
    )
    stack = Stack(config)
    with pytest.raises(StackStartError, match=r"(?s)function-auth exited.*boom: misconfigured"):
        stack.start()
    assert stack.pids() == []


@pytest.mark.parametrize("today", ["2027-01-01", "2028-02-29", "2026-12-31", "2027-03-15"])
def test_demo_plan_is_in_the_past_and_balanced(today: str) -> None:
    day = dt.date.fromisoformat(today)
    planned = plan(day)
    assert planned and all(item.day <= day for item in planned)
    assert min(item.day for item in planned) >= (day.replace(day=1) - dt.timedelta(days=92))
    for item in planned:
        if item.splits:
            assert sum(amount for _, amount in item.splits) == item.amount


# -- gateway ----------------------------------------------------------------------------------


class FakeUpstream:
    """An aiohttp server in a background thread: echoes HTTP requests, WebSocket messages and
    plays an Engine.IO handshake that hands out a sid naming this instance."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{self.label}:{message.data}")
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(message.data[::-1])
            return ws
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if request.path.startswith("/socket.io/") and "sid" not in request.query:
            handshake = json.dumps({"sid": f"{self.label}-{len(self.seen)}", "upgrades": []})
            return web.Response(text=f"0{handshake}")
        response = web.Response(
            status=201,
            body=json.dumps({"upstream": self.label, "path_qs": request.raw_path}).encode(),
            content_type="application/json",
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        response.headers["X-Upstream"] = self.label
        return response

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._echo)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# Gateway URL, the API upstream, two realtime upstreams.
Gateway = tuple[str, FakeUpstream, FakeUpstream, FakeUpstream]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with FakeUpstream("api") as api, FakeUpstream("rt1") as rt1, FakeUpstream("rt2") as rt2:
        routes = {"echo": api.url, "down": f"http://127.0.0.1:{free_port()}"}
        server = GatewayServer(free_port(), tmp_path, routes, [rt1.url, rt2.url])
        server.start()
        try:
            server.wait_ready(20)
            yield server.url, api, rt1, rt2
        finally:
            server.stop()


def test_gateway_proxies_http_unchanged(gateway: Gateway) -> None:
    base, api, _, _ = gateway
    response = requests.post(
        f"{base}/api/echo/things/a%2Fb?x=1&y=%C3%A9",
        data=b"x" * 100_000,
        headers={"Content-Type": "application/octet-stream", "Authorization": "Bearer t"},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json() == {"upstream": "api", "path_qs": "/api/echo/things/a%2Fb?x=1&y=%C3%A9"}
    assert response.headers["X-Upstream"] == "api"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    seen = api.seen[-1]
    assert seen["method"] == "POST" and seen["body"] == b"x" * 100_000
    assert seen["headers"]["Authorization"] == "Bearer t"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    # The bare prefix is routed too.
    assert requests.get(f"{base}/api/echo", timeout=10).json()["path_qs"] == "/api/echo"


def test_gateway_errors_are_problem_json(gateway: Gateway) -> None:
    base = gateway[0]
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    missing = requests.get(f"{base}/api/x", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert missing.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no function serves /api/x",
    }
    down = requests.delete(f"{base}/api/down/1", timeout=10)
    assert down.status_code == 503
    assert down.headers["Content-Type"].startswith("application/problem+json")
    assert int(down.headers["Retry-After"]) > 0
    assert down.json()["status"] == 503


def test_gateway_socketio_is_sticky_and_proxies_websockets(
    gateway: Gateway,
) -> None:
    base, _, rt1, rt2 = gateway
    handshakes = [
        requests.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5).text for _ in range(2)
    ]
    sids = [json.loads(text[1:])["sid"] for text in handshakes]
    # Round-robin for handshakes...
    assert {sid.split("-")[0] for sid in sids} == {"rt1", "rt2"}
    # ...then every request of a session reaches the instance that issued its sid.
    for sid in sids:
        for _ in range(3):
            polled = requests.post(
                f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}", data="40", timeout=5
            )
            assert polled.json()["upstream"] == sid.split("-")[0]

    async def talk() -> list[Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket&sid={sids[0]}") as ws,
        ):
            await ws.send_str("hello")
            text = await ws.receive_str(timeout=5)
            await ws.send_bytes(b"abc")
            data = await ws.receive_bytes(timeout=5)
            return [text, data]

    assert asyncio.run(talk()) == [f"{sids[0].split('-')[0]}:hello", b"cba"]
    assert rt1.seen and rt2.seen


# -- SMTP sink --------------------------------------------------------------------------------


def test_smtp_sink_stores_and_exposes_messages(tmp_path: Path) -> None:
    smtp_port, http_port = free_ports(2)
    sink = SmtpSink(smtp_port, http_port, tmp_path)
    sink.start()
    try:
        sink.wait_ready(20)
        message = EmailMessage()
        message["From"] = "Valorize <no-reply@valorize.local>"
        message["To"] = "demo@valorize.dev"
        message["Subject"] = "Importação concluída"
        message.set_content("Seu extrato foi importado: 12 novas transações.")
        message.add_alternative("<p>Seu extrato foi importado</p>", subtype="html")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.send_message(message, to_addrs=["demo@valorize.dev", "bcc@valorize.local"])
        api = f"{sink.api_url}/messages"
        [received] = requests.get(api, timeout=5).json()
        assert received["from"] == "Valorize <no-reply@valorize.local>"
        assert received["to"] == ["demo@valorize.dev", "bcc@valorize.local"]
        assert received["subject"] == "Importação concluída"
        assert received["body"].strip() == "Seu extrato foi importado: 12 novas transações."
        assert "<p>" in received["html"]
        assert len(list(sink.maildir.glob("*.eml"))) == 1
        assert requests.get(api, params={"to": "other@x"}, timeout=5).json() == []
        assert requests.delete(api, timeout=5).status_code == 204
        assert requests.get(api, timeout=5).json() == []
    finally:
        sink.stop()


# -- the CLI, with every service, fake functions and the seed ---------------------------------


def test_cli_up_runs_everything_seeds_and_stops_on_sigint(tmp_path: Path) -> None:
    functions_dir = write_fake_functions(tmp_path / "functions")
    stack_file = tmp_path / "stack.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # Every port from the environment, 0 = any free one: the test must not need 8080 & co.
    services = ("gateway", "functions", "realtime", "firestore", "redis", "storage", "tasks")
    for name in (*services, "smtp"):
        env[f"VALORIZE_{name.upper()}_PORT"] = "0"
    env["VALORIZE_SMTP_HTTP_PORT"] = "0"
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "up",
            "--functions-dir",
            str(functions_dir),
            "--log-dir",
            str(tmp_path / "logs"),
            "--stack-file",
            str(stack_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    leaders: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not stack_file.exists():
            assert cli.poll() is None, cli.stdout.read() if cli.stdout else ""
            assert time.monotonic() < deadline, "stack.json never appeared"
            time.sleep(0.2)
        state = json.loads(stack_file.read_text())
        assert set(state) >= {"base_url", "realtime_url", "functions", "demo"}
        assert set(state["functions"]) == set(FUNCTIONS)
        assert state["demo"] == {"email": "demo@valorize.dev", "token": "tok-demo"}
        base = state["base_url"]
        seen_env = requests.get(f"{base}/api/transactions/env", timeout=5).json()
        assert json.loads(seen_env["VALORIZE_FUNCTION_URLS"]) == state["functions"]
        assert seen_env["VALORIZE_GATEWAY_URL"] == base
        assert seen_env["GOOGLE_CLOUD_PROJECT"] == "valorize-local"
        assert all(seen_env[key] for key in ENV_KEYS), seen_env
        # Per function, from the registry: its own queues and its own URL as audience.
        assert seen_env["VALORIZE_TASK_QUEUES"] == ",".join(FUNCTIONS["transactions"].enqueues)
        assert seen_env["VALORIZE_INTERNAL_AUDIENCES"] == state["functions"]["transactions"]
        services = state["services"]
        assert services["internal_secret"] == seen_env["VALORIZE_INTERNAL_SECRET"]
        assert services["internal_header"] == "X-Valorize-Internal"
        # Each function answers on its own URL as well as through the gateway.
        for name, url in state["functions"].items():
            assert requests.get(f"{url}/api/{name}/healthz", timeout=5).status_code == 200
        # The two realtime instances are the real realtime_server (the seed does not use it).
        realtime = state["services"]["realtime_instances"]
        assert len(realtime) == 2
        for url in realtime:
            assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        leaders = {pid for pid, ppid, _, _ in processes() if ppid == cli.pid}
        assert len(leaders) == 5 + len(FUNCTIONS) + len(realtime) + 1
    finally:
        cli.send_signal(signal.SIGINT)
        output, _ = cli.communicate(timeout=30)
    assert cli.returncode == 0, output
    assert "Token:" in output and "curl" in output
    assert wait_until_gone(leaders) == []
    assert not stack_file.exists()
