"""The whole local cloud as one context manager, for ``python -m devstack up`` and pytest."""

from __future__ import annotations

import atexit
import contextlib
import json
import secrets
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
import requests

from devstack import seed as demo_seed
from devstack.ports import HOST, ensure_port_free, free_ports
from devstack.process import ManagedProcess
from devstack.services import (
    BUCKET,
    PROJECT_ID,
    REPO_ROOT,
    TASKS_LOCATION,
    FirestoreEmulator,
    FunctionServer,
    GatewayServer,
    RealtimeInstance,
    RedisServer,
    SmtpSink,
    StorageEmulator,
    TasksEmulator,
)
from functions.registry import (
    ALLOWED_QUEUES_ENV,
    FUNCTIONS,
    INTERNAL_AUDIENCES_ENV,
    INTERNAL_CALLERS_ENV,
    QUEUES,
    SCHEDULER_INVOKER,
    TASKS_INVOKER,
    internal_paths,
    public_routes,
    runtime_env,
)

CORS_ORIGINS = "http://localhost:5173,http://127.0.0.1:5173"
# Every variable the stack may hand to functions; those of services not started are removed
# from the inherited environment rather than passed through from whoever launched us.
STACK_ENV_KEYS = (
    "GOOGLE_CLOUD_PROJECT",
    "FIRESTORE_EMULATOR_HOST",
    "REDIS_URL",
    "STORAGE_EMULATOR_HOST",
    "VALORIZE_BUCKET",
    "TASKS_EMULATOR_HOST",
    "VALORIZE_TASKS_LOCATION",
    ALLOWED_QUEUES_ENV,
    INTERNAL_CALLERS_ENV,
    INTERNAL_AUDIENCES_ENV,
    "SMTP_HOST",
    "SMTP_PORT",
    "VALORIZE_INTERNAL_SECRET",
    "VALORIZE_CORS_ORIGINS",
    "VALORIZE_FUNCTION_URLS",
    "VALORIZE_GATEWAY_URL",
)
# Locally no OIDC token is minted (the tasks emulator sends none; the shared secret stands in),
# but the functions get the same registry-derived caller list as in production.
LOCAL_INVOKERS = {
    account: f"{account}@{PROJECT_ID}.iam.gserviceaccount.com"
    for account in (TASKS_INVOKER, SCHEDULER_INVOKER)
}


class StackStartError(RuntimeError):
    """One or more services failed to start; everything already started has been stopped."""


@dataclass
class Ports:
    """Requested ports: 0 picks a free one; anything else must be free or nothing starts."""

    gateway: int = 0
    firestore: int = 0
    redis: int = 0
    storage: int = 0
    tasks: int = 0
    smtp: int = 0
    smtp_http: int = 0
    # Port of the first function; the others follow in registry order.
    functions: int = 0
    # Port of the first realtime instance; the others follow.
    realtime: int = 0


@dataclass
class StackConfig:
    firestore: bool = True
    redis: bool = True
    storage: bool = True
    tasks: bool = True
    smtp: bool = True
    # Function folders to run; None runs every function of the registry.
    functions: Sequence[str] | None = None
    gateway: bool = True
    # Start realtime_server/ instances (they need Firestore and Redis); the gateway sends
    # /socket.io/ to them, sticky per session.
    realtime: bool = False
    realtime_instances: int = 2
    # gunicorn worker of the instances: "eventlet" or "gevent" (VALORIZE_REALTIME_WORKER).
    realtime_worker: str = "eventlet"
    # Already-running Socket.IO servers the gateway sends /socket.io/ to as well.
    realtime_urls: Sequence[str] = ()
    ports: Ports = field(default_factory=Ports)
    # None: a fresh temporary directory (kept afterwards, for post-mortems).
    log_dir: Path | None = None
    seed: bool = False
    # Extra variables for the functions (feature flags, WORKERS/THREADS...).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Function folder -> target; None uses functions/registry.py.
    function_targets: Mapping[str, str] | None = None
    functions_dir: Path = REPO_ROOT / "functions"
    tasks_venv: Path | None = None
    startup_timeout: float = 90.0


@dataclass(frozen=True)
class StackUrls:
    base_url: str | None
    realtime_url: str | None
    functions: dict[str, str]
    # Each realtime instance's own URL (the gateway's /socket.io/ spreads over them).
    realtime_instances: list[str]
    firestore_host: str | None
    redis_url: str | None
    storage_url: str | None
    tasks_host: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_api_url: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stack:
    """Start the configured services, functions and gateway; stop them all on exit.

    Usage: ``with Stack(StackConfig(functions=[], gateway=False)) as stack:`` then read
    ``stack.urls`` / ``stack.env``. Start order: emulators in parallel, then functions in
    parallel, then the gateway, then the optional seed; stop goes in reverse.
    """

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        targets = self.config.function_targets or {
            name: f.entry_point for name, f in FUNCTIONS.items()
        }
        names = list(targets) if self.config.functions is None else list(self.config.functions)
        unknown = [name for name in names if name not in targets]
        if unknown:
            raise ValueError(f"unknown functions {unknown}; known: {sorted(targets)}")
        self.function_targets = {name: targets[name] for name in names}
        self.log_dir = self.config.log_dir or Path(tempfile.mkdtemp(prefix="valorize-stack-"))
        self.secret = secrets.token_urlsafe(32)
        self.ports: dict[str, int] = {}
        self.function_ports: dict[str, int] = {}
        self.realtime_ports: list[int] = []
        self.realtime_count = self.config.realtime_instances if self.config.realtime else 0
        self.demo: demo_seed.DemoUser | None = None
        self.startup_seconds: float | None = None
        # Seconds per startup phase, to see where a slow start goes.
        self.timings: dict[str, float] = {}
        self._started: list[list[ManagedProcess]] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- ports -------------------------------------------------------------------------------
    def _resolve_ports(self) -> None:
        """Decide every port before anything starts, so a busy one fails fast and clean."""
        cfg, requested = self.config, self.config.ports
        wanted: dict[str, int] = {}
        for service in ("firestore", "redis", "storage", "tasks"):
            if getattr(cfg, service):
                wanted[service] = getattr(requested, service)
        if cfg.smtp:
            wanted["smtp"] = requested.smtp
            wanted["smtp_http"] = requested.smtp_http
        if cfg.gateway:
            wanted["gateway"] = requested.gateway
        for index, name in enumerate(self.function_targets):
            wanted[f"function:{name}"] = requested.functions + index if requested.functions else 0
        for index in range(self.realtime_count):
            wanted[f"realtime:{index}"] = requested.realtime + index if requested.realtime else 0

        explicit: dict[int, str] = {}
        for key, port in wanted.items():
            if not port:
                continue
            label = key.split(":")[0].replace("function", "functions")
            if port in explicit:
                raise ValueError(f"port {port} is requested for both {explicit[port]} and {key}")
            explicit[port] = key
            ensure_port_free(port, label)
        picked = iter(free_ports(sum(1 for p in wanted.values() if not p), exclude=explicit))
        for key, port in wanted.items():
            chosen = port or next(picked)
            if key.startswith("function:"):
                self.function_ports[key.removeprefix("function:")] = chosen
            elif key.startswith("realtime:"):
                self.realtime_ports.append(chosen)
            else:
                self.ports[key] = chosen

    # -- what clients need -------------------------------------------------------------------
    @property
    def urls(self) -> StackUrls:
        gateway = f"http://{HOST}:{self.ports['gateway']}" if "gateway" in self.ports else None
        has = self.ports.__contains__
        instances = [f"http://{HOST}:{port}" for port in self.realtime_ports]
        return StackUrls(
            base_url=gateway,
            realtime_url=gateway or (instances[0] if instances else None),
            functions={name: f"http://{HOST}:{p}" for name, p in self.function_ports.items()},
            realtime_instances=instances,
            firestore_host=f"{HOST}:{self.ports['firestore']}" if has("firestore") else None,
            redis_url=f"redis://{HOST}:{self.ports['redis']}/0" if has("redis") else None,
            storage_url=f"http://{HOST}:{self.ports['storage']}" if has("storage") else None,
            tasks_host=f"{HOST}:{self.ports['tasks']}" if has("tasks") else None,
            smtp_host=HOST if has("smtp") else None,
            smtp_port=self.ports.get("smtp"),
            smtp_api_url=f"http://{HOST}:{self.ports['smtp_http']}" if has("smtp") else None,
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment functions get; also what in-process test clients should use."""
        urls = self.urls
        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT_ID,
            "VALORIZE_INTERNAL_SECRET": self.secret,
            # In-process clients (tests) may enqueue anywhere; each function gets only its
            # own queues (function_env).
            ALLOWED_QUEUES_ENV: ",".join(QUEUES),
            "VALORIZE_CORS_ORIGINS": CORS_ORIGINS,
            "VALORIZE_FUNCTION_URLS": json.dumps(urls.functions),
            "PYTHONUNBUFFERED": "1",
        }
        if urls.base_url:
            env["VALORIZE_GATEWAY_URL"] = urls.base_url
        if urls.firestore_host:
            env["FIRESTORE_EMULATOR_HOST"] = urls.firestore_host
        if urls.redis_url:
            env["REDIS_URL"] = urls.redis_url
        if urls.storage_url:
            env["STORAGE_EMULATOR_HOST"] = urls.storage_url
            env["VALORIZE_BUCKET"] = BUCKET
        if urls.tasks_host:
            env["TASKS_EMULATOR_HOST"] = urls.tasks_host
            env["VALORIZE_TASKS_LOCATION"] = TASKS_LOCATION
        if urls.smtp_host and urls.smtp_port:
            env["SMTP_HOST"] = urls.smtp_host
            env["SMTP_PORT"] = str(urls.smtp_port)
        return env

    def function_env(self, name: str) -> dict[str, str]:
        """What function ``name`` gets on top of :attr:`env`: its registry entry's queues and
        internal callers, as infra/cdktf gives them in production, and its own URL as the
        audience of internal calls."""
        function = FUNCTIONS.get(name)
        if function is None:
            return {}
        return {
            **runtime_env(function, LOCAL_INVOKERS),
            INTERNAL_AUDIENCES_ENV: self.urls.functions[name],
        }

    def stack_json(self) -> dict[str, Any]:
        """The ``.local/stack.json`` document of ../shared/spec/CONTRACT.md, plus a
        ``services`` section."""
        urls = self.urls
        demo = {"email": self.demo["email"], "token": self.demo["token"]} if self.demo else None
        services = {
            k: v for k, v in urls.as_dict().items() if k not in ("base_url", "realtime_url")
        }
        services.pop("functions")
        return {
            "base_url": urls.base_url,
            "realtime_url": urls.realtime_url,
            "functions": urls.functions,
            "demo": demo,
            # The shared secret internal endpoints (scheduler and task targets) accept locally,
            # sent as X-Valorize-Internal: trigger an automation run with curl (README).
            "services": {
                **services,
                "log_dir": str(self.log_dir),
                "internal_header": "X-Valorize-Internal",
                "internal_secret": self.secret,
            },
        }

    # -- lifecycle ---------------------------------------------------------------------------
    def _build(self) -> tuple[list[ManagedProcess], list[ManagedProcess], list[ManagedProcess]]:
        cfg, ports, logs = self.config, self.ports, self.log_dir
        emulators: list[ManagedProcess] = []
        if cfg.firestore:
            emulators.append(FirestoreEmulator(ports["firestore"], logs))
        if cfg.redis:
            emulators.append(RedisServer(ports["redis"], logs))
        if cfg.storage:
            emulators.append(StorageEmulator(ports["storage"], logs))
        if cfg.tasks:
            queues = [
                f"projects/{PROJECT_ID}/locations/{TASKS_LOCATION}/queues/{q}" for q in QUEUES
            ]
            emulators.append(
                TasksEmulator(
                    ports["tasks"], logs, queues, venv=cfg.tasks_venv, dispatch=tasks_dispatch()
                )
            )
        if cfg.smtp:
            emulators.append(SmtpSink(ports["smtp"], ports["smtp_http"], logs))
        env = {**self.env, **cfg.extra_env}
        servers: list[ManagedProcess] = [
            FunctionServer(
                name,
                target,
                self.function_ports[name],
                logs,
                {**env, **self.function_env(name)},
                functions_dir=cfg.functions_dir,
                unset_env=STACK_ENV_KEYS,
            )
            for name, target in self.function_targets.items()
        ]
        # Started with the functions: both only need the emulators.
        servers += [
            RealtimeInstance(
                index, port, logs, env, worker=cfg.realtime_worker, unset_env=STACK_ENV_KEYS
            )
            for index, port in enumerate(self.realtime_ports)
        ]
        gateway: list[ManagedProcess] = []
        if cfg.gateway:
            urls = self.urls
            realtime = [*cfg.realtime_urls, *urls.realtime_instances]
            # As the load balancer: the public functions' prefixes, never an internal path
            # (functions not in the registry, e.g. test fakes, by their own name).
            routes = {n: u for n, u in urls.functions.items() if n not in FUNCTIONS}
            routes.update(
                {p: urls.functions[f] for p, f in public_routes().items() if f in urls.functions}
            )
            gateway.append(
                GatewayServer(ports["gateway"], logs, routes, realtime, blocked=internal_paths())
            )
        return emulators, servers, gateway

    def start(self) -> Self:
        if self._started or self._closed:
            raise RuntimeError("a Stack starts once; create a new one")
        began = time.monotonic()
        self._resolve_ports()
        atexit.register(self.stop)
        try:
            for phase, group in zip(
                ("emulators", "functions", "gateway"), self._build(), strict=True
            ):
                phase_began = time.monotonic()
                self._start_group(group)
                self.timings[phase] = time.monotonic() - phase_began
            if self.config.seed:
                if not self.urls.base_url:
                    raise StackStartError("seeding needs the gateway")
                phase_began = time.monotonic()
                try:
                    self.demo = demo_seed.seed(self.urls.base_url)
                except (demo_seed.SeedError, requests.RequestException) as error:
                    raise StackStartError(f"seeding the demo data failed: {error}") from error
                self.timings["seed"] = time.monotonic() - phase_began
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _start_group(self, group: Sequence[ManagedProcess]) -> None:
        """Start a group in parallel and wait until every member is ready."""
        if not group:
            return
        started: list[ManagedProcess] = []
        self._started.append(started)

        def launch(service: ManagedProcess) -> None:
            service.prepare()
            with self._lock:
                # stop() may have run meanwhile (Ctrl-C during startup): spawn nothing new.
                if self._closed:
                    return
                service.spawn()
                started.append(service)
            service.wait_ready(self.config.startup_timeout)

        executor = ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="devstack")
        try:
            futures = {executor.submit(launch, service): service for service in group}
            wait(futures)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
        errors = [str(f.exception()) for f in futures if f.exception() is not None]
        if errors:
            raise StackStartError("the stack did not start:\n\n" + "\n\n".join(errors))

    def stop(self) -> None:
        """Stop everything in reverse start order; idempotent and safe from atexit."""
        with self._lock:
            self._closed = True
            groups, self._started = self._started, []
        atexit.unregister(self.stop)
        for group in reversed(groups):
            _in_parallel(lambda service: service.stop(), group)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------
    def process(self, name: str) -> ManagedProcess:
        """The running service called ``name`` (its log file's stem: ``redis``, ``firestore``,
        ``tasks``, ``function-<folder>``, ``realtime-<index>``, ``gateway``...), for tests and
        the fault suite to stop, kill or restart it in place."""
        with self._lock:
            running = {s.name: s for group in self._started for s in group}
        if name not in running:
            raise KeyError(f"no service {name!r} in this stack; running: {sorted(running)}")
        return running[name]

    def pids(self) -> list[int]:
        """Process-group leaders currently running (each one's group holds its children)."""
        with self._lock:
            return [s.pid for group in self._started for s in group if s.pid is not None]

    def reset(self) -> None:
        """Empty Firestore, Redis and the mail sink (between tests, much faster than restart)."""
        urls = self.urls
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if urls.firestore_host:
            documents = (
                f"http://{urls.firestore_host}/emulator/v1/projects/{PROJECT_ID}"
                "/databases/(default)/documents"
            )
            opener.open(urllib.request.Request(documents, method="DELETE"), timeout=10).close()
        if urls.redis_url:
            with contextlib.closing(redis.Redis.from_url(urls.redis_url)) as client:
                client.flushall()
        if urls.smtp_api_url:
            request = urllib.request.Request(f"{urls.smtp_api_url}/messages", method="DELETE")
            opener.open(request, timeout=10).close()


def _seconds(duration: str) -> float:
    """A Cloud Tasks duration ("5s", "0.1s") in seconds."""
    return float(duration.removesuffix("s"))


def tasks_dispatch() -> dict[str, dict[str, float]]:
    """Each registry queue's rate, concurrency and retries, as the emulator shim takes them:
    locally tasks are dispatched as infra/cdktf configures Cloud Tasks in production."""
    return {
        q.name: {
            "rate": q.max_dispatches_per_second,
            "concurrency": q.max_concurrent_dispatches,
            "max_attempts": q.max_attempts,
            "min_backoff": _seconds(q.min_backoff),
            "max_backoff": _seconds(q.max_backoff),
            "max_doublings": q.max_doublings,
        }
        for q in QUEUES.values()
    }


def _in_parallel(action: Callable[[ManagedProcess], None], items: Iterable[ManagedProcess]) -> None:
    """Run ``action`` on every item at once; used for stopping, so it must work from atexit,
    where concurrent.futures already refuses new work."""
    errors: list[BaseException] = []

    def run(item: ManagedProcess) -> None:
        try:
            action(item)
        except BaseException as error:  # noqa: BLE001 - re-raised below in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
