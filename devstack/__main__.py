"""``python -m devstack up``: run the whole local cloud until Ctrl-C.
``python -m devstack verify``: its integrity check (devstack/verify.py).

Every port comes from its option, else from ``VALORIZE_<NAME>_PORT``, else the default below.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.ports import PortInUseError, env_var_for
from devstack.process import ServiceError
from devstack.services import BUCKET, REPO_ROOT
from devstack.stack import Ports, Stack, StackConfig, StackStartError
from devstack.verify import add_arguments, verify
from functions.registry import FUNCTIONS

DEFAULT_PORTS = {
    "gateway": 8080,
    "functions": 8101,
    "realtime": 8201,
    "firestore": 8090,
    "redis": 6390,
    "storage": 9023,
    "tasks": 8123,
    "smtp": 1025,
    "smtp_http": 1080,
}
SERVICES = ("firestore", "redis", "storage", "tasks", "smtp")


class Shutdown(BaseException):
    """Raised from SIGTERM/SIGHUP handlers so startup and waiting unwind like Ctrl-C."""


def _raise_shutdown(signum: int, _: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _port_default(name: str) -> int:
    value = os.environ.get(env_var_for(name))
    if value is None:
        return DEFAULT_PORTS[name]
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{env_var_for(name)}={value!r} is not a port number") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything and wait for Ctrl-C")
    for name, default in DEFAULT_PORTS.items():
        option = f"--{name.replace('_', '-')}-port"
        help_text = f"default {default}, or ${env_var_for(name)}; 0 picks a free one"
        if name in ("functions", "realtime"):
            help_text = f"first {name} instance's port, the others follow; " + help_text
        up.add_argument(option, dest=f"{name}_port", type=int, help=help_text)
    up.add_argument("--no-seed", action="store_true", help="do not create the demo user")
    up.add_argument(
        "--functions",
        type=lambda value: [f for f in value.split(",") if f],
        help=f"comma-separated subset of: {','.join(FUNCTIONS)}",
    )
    up.add_argument("--skip", action="append", choices=SERVICES, default=[], help="repeatable")
    up.add_argument(
        "--realtime", action="append", default=[], help="URL of a running Socket.IO server"
    )
    up.add_argument(
        "--realtime-instances",
        type=int,
        default=2,
        help="realtime_server instances to start behind /socket.io/ (default 2; 0: none)",
    )
    up.add_argument(
        "--realtime-worker",
        choices=("eventlet", "gevent"),
        default="eventlet",
        help="gunicorn worker of the realtime instances (default eventlet)",
    )
    up.add_argument(
        "--functions-dir", type=Path, default=REPO_ROOT / "functions", help=argparse.SUPPRESS
    )
    up.add_argument("--log-dir", type=Path, default=REPO_ROOT / ".local" / "logs")
    up.add_argument("--stack-file", type=Path, default=REPO_ROOT / ".local" / "stack.json")
    verify = commands.add_parser(
        "verify", help="recompute balances and read models from transactions; report drift"
    )
    add_arguments(verify, REPO_ROOT / ".local" / "stack.json")
    args = parser.parse_args(argv)
    if args.command != "up":
        return args
    for name in DEFAULT_PORTS:
        if getattr(args, f"{name}_port") is None:
            setattr(args, f"{name}_port", _port_default(name))
    return args


def summary(stack: Stack, stack_file: Path) -> str:
    urls = stack.urls
    rows: list[tuple[str, str]] = []
    if urls.base_url:
        rows += [("gateway", urls.base_url), ("realtime", f"{urls.realtime_url}/socket.io/")]
    rows += [(f"function {name}", url) for name, url in urls.functions.items()]
    rows += [(f"realtime {i}", url) for i, url in enumerate(urls.realtime_instances)]
    if urls.firestore_host:
        rows.append(("firestore", f"{urls.firestore_host}  (FIRESTORE_EMULATOR_HOST)"))
    if urls.redis_url:
        rows.append(("redis", urls.redis_url))
    if urls.storage_url:
        rows.append(("storage", f"{urls.storage_url}  (bucket {BUCKET})"))
    if urls.tasks_host:
        rows.append(("cloud tasks", f"{urls.tasks_host}  (gRPC)"))
    if urls.smtp_host:
        rows += [
            ("smtp", f"{urls.smtp_host}:{urls.smtp_port}"),
            ("mail", f"{urls.smtp_api_url}/messages"),
        ]
    rows += [("logs", str(stack.log_dir)), ("stack file", str(stack_file))]
    width = max(len(label) for label, _ in rows)
    phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in stack.timings.items())
    lines = [f"ValorizeAI local stack is up in {stack.startup_seconds:.1f} s ({phases})", ""]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    if stack.demo:
        base = urls.base_url
        lines += [
            "",
            f"Demo user: {stack.demo['email']} / {stack.demo['password']}",
            f"Token:     {stack.demo['token']}",
            "",
            "Try:",
            f"  curl -s -H 'Authorization: Bearer {stack.demo['token']}' {base}/api/accounts",
        ]
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


def up(args: argparse.Namespace) -> int:
    config = StackConfig(
        firestore="firestore" not in args.skip,
        redis="redis" not in args.skip,
        storage="storage" not in args.skip,
        tasks="tasks" not in args.skip,
        smtp="smtp" not in args.skip,
        functions=args.functions,
        realtime=args.realtime_instances > 0,
        realtime_instances=args.realtime_instances,
        realtime_worker=args.realtime_worker,
        realtime_urls=args.realtime,
        ports=Ports(**{name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS}),
        log_dir=args.log_dir,
        seed=not args.no_seed,
        functions_dir=args.functions_dir,
    )
    stack = Stack(config)
    stack_file: Path = args.stack_file
    written = False
    try:
        print("Starting the local stack (logs in", f"{args.log_dir})...", flush=True)
        stack.start()
        stack_file.parent.mkdir(parents=True, exist_ok=True)
        stack_file.write_text(json.dumps(stack.stack_json(), indent=2) + "\n")
        written = True
        print(summary(stack, stack_file), flush=True)
        while True:
            signal.pause()
    except (KeyboardInterrupt, Shutdown):
        print("\nStopping...", flush=True)
        return 0
    except (PortInUseError, StackStartError, ServiceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the shutdown and strand half the processes.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        # A stale file would point clients at ports nobody serves any more.
        if written:
            stack_file.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Also SIGINT: a shell starting us in the background sets it to "ignore", and Python then
    # keeps ignoring it, leaving no way to Ctrl-C (or `kill -INT`) the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_shutdown)
    if args.command == "up":
        return up(args)
    if args.command == "verify":
        return verify(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
