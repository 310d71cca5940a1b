"""First real request: what a user waits for after a scale-out, beside the honest floor.

../shared/spec/TARGETS.md #7 as issue 14 states it: process start to the first authenticated 200
of a real route (a registered user with data) <= 1.25x a bare functions-framework function that
does one Firestore read with the official client (load/bare/firestore/main.py). Against one
emulator stack (devstack: Firestore, Redis, and the functions that seed the user), each round
spawns a fresh process of every variant, in a rotated order, and times from just before the
spawn. Every variant runs as it ships: a function's deployable archive (functions/package.py)
and the floor's folder, each installed with only its own requirements.txt in a fresh
virtualenv (as the build does, and as tests/artifacts starts them):

- `floor`: load/bare/firestore, polled on its route until the first 200 (that 200 includes its
  Firestore read);
- `<function>`: the function as deployed (its registry entry's clients warmed as the worker
  starts): /healthz polled until 200, as Cloud Run's startup probe does before it sends
  traffic ("ready"), then the real route ("first 200");
- `<function>_direct`: the same, but the real route polled from the start, as a platform
  without a startup probe would send the user's request as soon as the port listens;
- `<function>_lazy`: no client warmed (the behaviour before warming), healthz then the route.

The user's cached reads are invalidated before each spawn (one version bump, what any write
does), so every first request is a cache miss that reads Firestore, as the floor does.

    python load/firstreq.py [--rounds N] [--out load/results]

Writes `<out>/firstreq.json` and `<out>/firstreq.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "load"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import redis  # noqa: E402
import requests  # noqa: E402
from coldstart import machine_info, tree_pids, write_atomic  # noqa: E402
from read import cpu_seconds, seed_user  # noqa: E402

from devstack.ports import HOST, free_ports  # noqa: E402
from devstack.stack import LOCAL_INVOKERS, STACK_ENV_KEYS, Stack, StackConfig  # noqa: E402
from functions import package  # noqa: E402
from functions.registry import FUNCTIONS, runtime_env  # noqa: E402
from valorize.adapters.cache import RedisQueryCache  # noqa: E402
from valorize.config import WARM_CLIENTS_ENV  # noqa: E402

RATIO_TARGET = 1.25
# A refused connection costs the server nothing: retried at once. A 503 from /healthz is
# served by the instance while it warms, so it is asked again only every 100 ms (Cloud Run's
# startup probe: at most once a second), lest the polling itself slow the warm-up down.
POLL_S = 0.010
NOT_READY_POLL_S = 0.100
ROUTES = {
    "transactions": "/api/transactions?limit=50",
    "dashboard": "/api/dashboard/summary?month={month}",
    "accounts": "/api/accounts",
}
FLOOR = "floor"


class BenchError(RuntimeError):
    """A measurement that could not be taken; the message says why."""


@dataclass(frozen=True)
class Variant:
    key: str
    function: str  # the folder under functions/, or FLOOR
    mode: str  # "floor" | "warm" | "direct" | "lazy"

    @property
    def gated(self) -> bool:
        """Traffic only once /healthz answers 200 (Cloud Run's startup probe)."""
        return self.mode in ("warm", "lazy")


def variants(functions: list[str]) -> list[Variant]:
    out = [Variant(FLOOR, FLOOR, "floor")]
    for name in functions:
        out += [
            Variant(name, name, "warm"),
            Variant(f"{name}_direct", name, "direct"),
            Variant(f"{name}_lazy", name, "lazy"),
        ]
    return out


@dataclass(frozen=True)
class Installed:
    """A variant's code as it ships: its folder and the fresh virtualenv holding only its
    requirements.txt."""

    source: Path
    venv: Path


def install_all(functions: list[str], root: Path) -> dict[str, Installed]:
    """Each function's deployable archive (functions/package.py) installed as the build
    does, and the floor's folder with its own requirements, every one in its own venv: the
    first request then imports what ships, not the dev environment (whose extra packages,
    aiohttp for one, other libraries pick up at import), and pays the same for both."""
    out: dict[str, Installed] = {}
    for name in functions:
        source, _ = package.install(package.build(name, root / "dist"), root / name)
        out[name] = Installed(source, root / name / "venv")
    floor = root / FLOOR
    shutil.copytree(ROOT / "load" / "bare" / "firestore", floor / "src")
    package.install_requirements(floor / "src", floor / "venv")
    out[FLOOR] = Installed(floor / "src", floor / "venv")
    for installed in out.values():
        # The code's own modules compiled once, like its dependencies (pip compiles those
        # at install): every round starts from the same files, none pays a compile.
        compiled = subprocess.run(
            [
                str(installed.venv / "bin" / "python"),
                "-m",
                "compileall",
                "-q",
                str(installed.source),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if compiled.returncode != 0:
            raise BenchError(f"compileall {installed.source}: {compiled.stdout}{compiled.stderr}")
    return out


# What a function imports beyond the floor, library by library: each line imports the ones
# before it too, so the difference between two lines is what that library adds.
LIBRARY_STEPS = {
    "interpreter": "pass",
    "functions_framework": "import functions_framework",
    "google.cloud.firestore": "import functions_framework, google.cloud.firestore",
    "redis": "import functions_framework, google.cloud.firestore, redis",
    "google.cloud.tasks_v2": "import functions_framework, google.cloud.firestore, redis, "
    "google.cloud.tasks_v2",
    "pydantic": "import functions_framework, google.cloud.firestore, redis, "
    "google.cloud.tasks_v2, pydantic",
    "main": "import functions_framework, google.cloud.firestore, redis, "
    "google.cloud.tasks_v2, pydantic, main",
}


def instructions(installed: Installed, code: str) -> int | None:
    """CPU instructions `code` executes in the variant's interpreter, counted by callgrind:
    the same count whatever else this shared machine does, unlike seconds."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    python = str(installed.venv / "bin" / "python")
    args = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", python, "-c", code]
    done = subprocess.run(args, cwd=installed.source, capture_output=True, text=True, check=False)
    for line in done.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise BenchError(f"callgrind of {code!r} failed: {done.stderr[-500:]}")


# The client libraries an instance's warm-up imports, per registry client name.
CLIENT_MODULES = {
    "firestore": "google.cloud.firestore",
    "redis": "redis",
    "tasks": "google.cloud.tasks_v2",
    "statements": "google.cloud.storage",
}


def startup_code(variant: str) -> str:
    """What a variant imports before its first request: the floor's main imports its client;
    a function's main imports none, its warm-up imports those of its registry entry."""
    if variant == FLOOR:
        return "import main"
    modules = {CLIENT_MODULES[c] for c in FUNCTIONS[variant].clients if c in CLIENT_MODULES}
    return f"import main, {', '.join(sorted(modules))}"


def import_profile(installed: dict[str, Installed], functions: list[str]) -> dict[str, Any]:
    """Instructions to import what each variant needs before its first request, and the
    libraries a function adds to the floor's, one step at a time (in the first function's
    environment)."""
    mains = {name: instructions(i, startup_code(name)) for name, i in installed.items()}
    steps: dict[str, int | None] = {}
    if functions:
        home = installed[functions[0]]
        steps = {name: instructions(home, code) for name, code in LIBRARY_STEPS.items()}
    return {"import_main": mains, "library_steps": steps, "steps_in": functions[:1]}


def command(variant: Variant, port: int, installed: Installed) -> list[str]:
    target = "read" if variant.function == FLOOR else variant.function
    executable = installed.venv / "bin" / "functions-framework"
    args = [str(executable), "--target", target, "--source", str(installed.source / "main.py")]
    return [*args, "--host", HOST, "--port", str(port)]


def environment(stack: Stack, variant: Variant, closed_port: int) -> dict[str, str]:
    leaks = (*STACK_ENV_KEYS, *package.HOST_LEAKS)
    env = {k: v for k, v in os.environ.items() if k not in leaks}
    env.update(stack.env)
    if variant.function != FLOOR:
        # What the registry entry gives the function, as devstack and infra/cdktf do.
        env.update(runtime_env(FUNCTIONS[variant.function], LOCAL_INVOKERS))
    if variant.mode == "lazy":
        env[WARM_CLIENTS_ENV] = ""
    # No Cloud Tasks emulator here: without one, the client looks for Google credentials (the
    # metadata server, seconds to time out), which Cloud Run answers at once. A client built
    # for an emulator that is not there costs what building it costs, no call is made.
    env.setdefault("TASKS_EMULATOR_HOST", f"{HOST}:{closed_port}")
    # One worker, as Cloud Run runs a function.
    env.update({"WORKERS": "1", "THREADS": "8"})
    return env


def poll(session: requests.Session, url: str, headers: dict[str, str], deadline: float) -> Any:
    """GET `url` until it answers 200 (a refused connection or a 503 means "not yet")."""
    while True:
        pause = POLL_S
        with contextlib.suppress(requests.ConnectionError):
            response = session.get(url, headers=headers, timeout=60)
            if response.status_code == 200:
                return response
            if response.status_code != 503:
                raise BenchError(f"{url} answered {response.status_code}: {response.text[:300]}")
            pause = NOT_READY_POLL_S
        if time.monotonic() > deadline:
            raise BenchError(f"{url} gave no 200 in time")
        time.sleep(pause)


def first_200(
    stack: Stack,
    variant: Variant,
    installed: Installed,
    path: str,
    token: str,
    logs: Path,
    timeout: float,
) -> dict[str, Any]:
    port, closed_port = free_ports(2)
    args = command(variant, port, installed)
    url = f"http://{HOST}:{port}"
    log = (logs / f"{variant.key}.log").open("ab")
    headers = {"Authorization": f"Bearer {token}"} if variant.function != FLOOR else {}
    started = time.perf_counter()
    process = subprocess.Popen(
        args,
        cwd=installed.source,
        env=environment(stack, variant, closed_port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    ready = None
    try:
        with requests.Session() as session:
            session.trust_env = False
            if variant.gated:
                poll(session, f"{url}/api/{variant.function}/healthz", {}, deadline)
                ready = time.perf_counter() - started
            response = poll(session, url + path, headers, deadline)
            first = time.perf_counter() - started
        cpu = cpu_seconds(tree_pids(process.pid))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    return {
        "ready_s": None if ready is None else round(ready, 3),
        "first_s": round(first, 3),
        "server_cpu_s": round(cpu, 2),
        "x_cache": response.headers.get("X-Cache", "-"),
    }


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    floor = {r["round"]: r["first_s"] for r in runs if r["variant"] == FLOOR}
    out: dict[str, Any] = {}
    for key in keys:
        mine = [r for r in runs if r["variant"] == key]
        ratios = [r["first_s"] / floor[r["round"]] for r in mine if r["round"] in floor]
        out[key] = {
            "first_s": median([r["first_s"] for r in mine]),
            "ready_s": median([r["ready_s"] for r in mine if r["ready_s"] is not None]),
            "server_cpu_s": median([r["server_cpu_s"] for r in mine]),
            "ratio_to_floor": median(ratios),
            "x_cache": sorted({r["x_cache"] for r in mine}),
            "samples": len(mine),
        }
    return out


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "# First real request: process start to the first authenticated 200, beside the floor",
        "",
        f"Run {report['date']} on {report['machine'].get('cpu_count')} cores "
        f"(load average before {report['loadavg_before']}, after {report['loadavg_after']}); "
        f"{report['config']['rounds']} rounds, every variant a fresh process per round in a "
        "rotated order; medians, the ratio is the median of each round's ratio to that round's "
        f"floor; a refused connection is retried after {POLL_S * 1000:.0f} ms, a 503 from "
        f"/healthz after {NOT_READY_POLL_S * 1000:.0f} ms. Target: first 200 <= "
        f"{RATIO_TARGET}x the floor (TARGETS.md #7 as issue 14 states it).",
        "",
        f"Floor: `load/bare/firestore` (functions-framework, one Firestore read with the official "
        f"client): **{s[FLOOR]['first_s']} s** to its first 200.",
        "",
        "| function | mode | healthz 200 (s) | first real 200 (s) | x floor | server CPU (s) "
        "| X-Cache | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, v in s.items():
        if key == FLOOR:
            lines.append(
                f"| floor | as shipped | - | {v['first_s']} | 1.0 | {v['server_cpu_s']} | - | - |"
            )
            continue
        name, _, mode = key.partition("_")
        ratio = v["ratio_to_floor"]
        verdict = "-"
        if not mode and ratio is not None:
            verdict = "met" if ratio <= RATIO_TARGET else f"missed by {ratio / RATIO_TARGET:.2f}x"
        lines.append(
            f"| {name} | {mode or 'warm, gated'} | {v['ready_s'] or '-'} | {v['first_s']} "
            f"| {ratio} | {v['server_cpu_s']} | {', '.join(v['x_cache'])} | {verdict} |"
        )
    lines += [
        "",
        "Modes: *warm, gated*: as deployed, the worker warms its registry entry's clients as it "
        "starts and traffic waits for /healthz 200 (a startup probe); *direct*: the same, the "
        "user's request sent as soon as the port listens (no probe; the request then waits on "
        "the warm-up's imports); *lazy*: nothing warmed (before this change), healthz then the "
        "route. The time to healthz 200 is what a probe holds the instance out of service; the "
        "first real 200 is what the user who caused the scale-out waits for. Server CPU is the "
        "process tree's up to that 200: here the first 200 is bound by it, and warming moves "
        "that CPU before readiness (where Cloud Run's startup CPU boost pays for it), it does "
        "not remove it: what is over the floor's is imports (below) and the route. "
        "Each worker logs its warm-up (`warm in`, seconds per client). The functions deploy "
        "as Cloud Functions (2nd gen; infra/cdktf), whose API declares no startup probe: there "
        "traffic arrives as soon as the port listens, which is the *direct* row.",
        "",
        *imports_markdown(report.get("imports")),
        f"Seeded user: {report['seeded']['transactions']} transactions; every first request a "
        "cache miss (the user's cache version bumped before each spawn). Rerun: "
        "`nox -s bench -- firstreq`.",
        "",
    ]
    return "\n".join(lines)


def imports_markdown(imports: dict[str, Any] | None) -> list[str]:
    if not imports:
        return []
    mains = imports["import_main"]
    floor = mains.get(FLOOR)
    if not floor:
        return []
    lines = [
        "Where the CPU goes: instructions to import what each variant needs before its first "
        "request (its `main` and the client libraries its warm-up imports; callgrind: a count "
        "independent of the machine's load), beside the floor's.",
        "",
        "| variant | imports (G instructions) | x floor |",
        "|---|---|---|",
    ]
    for name, count in mains.items():
        lines.append(f"| {name} | {count / 1e9:.3f} | {count / floor:.2f} |")
    steps = imports["library_steps"]
    if steps:
        lines += [
            "",
            f"What each library adds, imported one after another in the "
            f"`{imports['steps_in'][0]}` archive's environment (G instructions):",
            "",
            "| step | cumulative | added |",
            "|---|---|---|",
        ]
        previous = 0
        for name, count in steps.items():
            lines.append(f"| {name} | {count / 1e9:.3f} | {(count - previous) / 1e9:+.3f} |")
            previous = count
        mandated = steps.get("pydantic")
        if mandated:
            # What the target leaves for our own code, once the libraries the design card
            # names (redis, google-cloud-tasks, pydantic) are imported.
            lines += [
                "",
                f"The libraries the design card requires, before any of our code: "
                f"{mandated / 1e9:.3f} G = **{mandated / floor:.2f}x** the floor's "
                f"instructions; a 1.25x first request leaves our code "
                f"{(1.25 * floor - mandated) / 1e9:+.3f} G.",
            ]
    return [*lines, ""]


def run(args: argparse.Namespace) -> int:
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="valorize-firstreq-"))
    print(f"firstreq: logs in {workdir}", flush=True)
    config = StackConfig(
        storage=False,
        tasks=False,
        smtp=False,
        gateway=False,
        functions=["auth", "accounts", "categories", "transactions"],
        log_dir=workdir / "stack",
        startup_timeout=args.timeout,
    )
    keys = [v.key for v in variants(args.functions)]
    began = time.monotonic()
    installed = install_all(args.functions, workdir / "installed")
    print(f"installed {len(installed)} archives in {time.monotonic() - began:.1f} s", flush=True)
    runs: list[dict[str, Any]] = []
    with Stack(config) as stack:
        seeded = seed_user(stack.urls.functions, args.months, args.per_month)
        print(f"seeded {seeded.transactions} transactions in {seeded.seconds:.1f} s", flush=True)
        cache = RedisQueryCache(redis.Redis.from_url(stack.env["REDIS_URL"]), 300, 5.0)
        paths = {n: p.format(month=seeded.month) for n, p in ROUTES.items()}
        every = variants(args.functions)
        for rnd in range(args.rounds):
            shift = rnd % len(every)
            for variant in every[shift:] + every[:shift]:
                cache.bump(seeded.user_id)
                path = "/" if variant.function == FLOOR else paths[variant.function]
                result = first_200(
                    stack,
                    variant,
                    installed[variant.function],
                    path,
                    seeded.token,
                    workdir,
                    args.timeout,
                )
                runs.append({"variant": variant.key, "round": rnd + 1, **result})
                print(
                    f"  round {rnd + 1} {variant.key:<20} ready {result['ready_s'] or '-':>6} "
                    f"first {result['first_s']:>6} s  cpu {result['server_cpu_s']} s  "
                    f"{result['x_cache']}",
                    flush=True,
                )
    report = {
        "benchmark": "firstreq",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "config": {"rounds": args.rounds, "functions": args.functions, "routes": ROUTES},
        "seeded": {"transactions": seeded.transactions},
        "target_ratio_max": RATIO_TARGET,
        "summary": summarize(runs, keys),
        "runs": runs,
        "imports": import_profile(installed, args.functions) if args.profile_imports else None,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "firstreq.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / "firstreq.md", markdown(report))
    print(markdown(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--functions", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--per-month", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--no-profile-imports",
        dest="profile_imports",
        action="store_false",
        help="skip counting import instructions with callgrind (a few minutes)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BenchError as e:
        print(f"firstreq: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
