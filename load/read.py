"""Read ceiling: cached dashboard and transaction reads beside a bare function, with wrk.

../shared/spec/TARGETS.md #1 (cached `GET /api/transactions` and `GET /api/dashboard/...` sustain >=
70 % of a bare "hello" function's requests/s, same server settings and concurrency, in the same run,
with P95 <= 300 ms), #2 (read throughput per core against the original) and #9 (CPU-seconds per
1,000 requests and the Cloud Run price that implies).

One run starts the Firestore emulator and Redis (devstack), seeds one user with a few hundred
transactions over several months through the HTTP API, then serves five targets, every one with
the same functions-framework/gunicorn settings (WORKERS, THREADS):

- `bare`: load/bare/main.py (`return "ok"`), the ceiling of the server itself;
- `dashboard`: `GET /api/dashboard/summary?month=YYYY-MM`, cached (every request a hit);
- `transactions`: `GET /api/transactions?limit=15&account_id=...`, cached;
- `dashboard_cold`, `transactions_cold`: the same functions with the cache bypassed (REDIS_URL
  on a closed port, breaker held open), so every request reads Firestore.

wrk drives each target for `--duration` seconds at every `--connections` level; rounds are
interleaved (every round visits every level and target, in a rotated order) so noise on a
shared machine hits them alike. Per run: requests/s, P50/P75/P90/P95/P99 (wrk's own histogram,
from a Lua done() hook), errors (socket errors, timeouts, HTTP >= 400), the CPU time of the
server's process tree, of wrk, of the Firestore emulator and of Redis (/proc), and the machine's
total busy CPU.

    python load/read.py [--servers 1x8 2x1] [--connections 16 32 64] [--duration 10]
                        [--rounds 3] [--out load/results] [--no-profile]

Writes `<out>/read.json`, `<out>/read.md` and `<out>/read.png`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "load"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import redis  # noqa: E402
import requests  # noqa: E402
from coldstart import machine_info, proc_kib, tree_pids, write_atomic  # noqa: E402

from devstack import seed as demo_seed  # noqa: E402
from devstack.ports import HOST, free_ports  # noqa: E402
from devstack.process import ManagedProcess, ServiceError  # noqa: E402
from devstack.services import FunctionServer  # noqa: E402
from devstack.stack import STACK_ENV_KEYS, Stack, StackConfig, StackStartError  # noqa: E402

RATIO_TARGET = 0.70
P95_TARGET_MS = 300.0
# The original's read-heavy peak: 855 req/s (monitoring export; 970 claimed) on 10 x 1 vCPU.
ORIGINAL_READ_PER_VCPU = (85.5, 97.0)
PER_CORE_TARGET = 5.0
# Cloud Run list prices (Tier 1, request-based billing) assumed for the cost column.
PRICE_VCPU_SECOND = 0.000024
PRICE_GIB_SECOND = 0.0000025
PRICE_PER_MILLION_REQUESTS = 0.40
INSTANCE_GIB = 0.5
PERCENTILES = ("p50", "p75", "p90", "p95", "p99")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The bench user; the email is unique per run so a reused emulator never mixes data.
PASSWORD = "read-bench-password-123"

WRK_LUA = r"""
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("READ_BENCH_TOKEN")

function done(summary, latency, requests)
  local f = assert(io.open(os.getenv("READ_BENCH_OUT"), "w"))
  local e = summary.errors
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"min_us":%d,"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.min, latency.max, latency.mean, latency.stdev))
  for _, p in ipairs({50, 75, 90, 95, 99}) do
    f:write(string.format(',"p%d_us":%d', p, latency:percentile(p)))
  end
  f:write("}\n")
  f:close()
end
"""


class BenchError(RuntimeError):
    """A measurement that could not be taken; the message says why."""


@dataclass(frozen=True)
class Target:
    key: str
    folder: str
    fn_target: str
    functions_dir: Path
    cache: str  # "none" | "cached" | "cold"
    endpoint: str  # filled with the seeded ids at run time

    @property
    def label(self) -> str:
        return {
            "none": "bare hello",
            "cached": "cached",
            "cold": "uncached",
            "what-if": "cached + token cache, what-if",
        }[self.cache]

    @property
    def endpoint_name(self) -> str:
        return self.key.split("_")[0]


TARGETS = (
    Target("bare", "bare", "hello", ROOT / "load", "none", "/"),
    Target(
        "dashboard",
        "dashboard",
        "dashboard",
        ROOT / "functions",
        "cached",
        "/api/dashboard/summary?month={month}",
    ),
    Target(
        "transactions",
        "transactions",
        "transactions",
        ROOT / "functions",
        "cached",
        "/api/transactions?limit=15&account_id={account}",
    ),
    Target(
        "dashboard_cold",
        "dashboard",
        "dashboard",
        ROOT / "functions",
        "cold",
        "/api/dashboard/summary?month={month}",
    ),
    Target(
        "transactions_cold",
        "transactions",
        "transactions",
        ROOT / "functions",
        "cold",
        "/api/transactions?limit=15&account_id={account}",
    ),
)
# `--what-if`: the cached transactions function with authentication memoised in-process for
# TOKEN_CACHE_SECONDS (a wrapper module; shared code untouched), to size that fix.
TOKEN_CACHE_SECONDS = 60
WHAT_IF = Target(
    "transactions_tokencache",
    "transactions",
    "transactions",
    ROOT / "functions",  # replaced by the generated wrapper's folder at run time
    "what-if",
    "/api/transactions?limit=15&account_id={account}",
)
ALL_TARGETS = {t.key: t for t in (*TARGETS, WHAT_IF)}
WHAT_IF_MAIN = """\
\"\"\"What-if (load/read.py --what-if): functions/transactions/main.py with every token's
authentication memoised in-process for {ttl} s. Not production code: a revoked token would
stay valid up to {ttl} s here.\"\"\"

import importlib.util
import sys
import threading
import time

_spec = importlib.util.spec_from_file_location("_real_main", {source!r})
_real = importlib.util.module_from_spec(_spec)
sys.modules["_real_main"] = _real
_spec.loader.exec_module(_real)
_seen = {{}}
_lock = threading.Lock()


def _authenticate(token):
    now = time.monotonic()
    hit = _seen.get(token)
    if hit is not None and hit[1] > now:
        return hit[0]
    principal = _real.app.services.auth.authenticate(token)
    with _lock:
        _seen[token] = (principal, now + {ttl})
    return principal


_real.app.authenticate = _authenticate
transactions = _real.transactions
"""


def write_what_if(workdir: Path) -> Path:
    folder = workdir / "whatif" / "transactions"
    folder.mkdir(parents=True, exist_ok=True)
    source = str(ROOT / "functions" / "transactions" / "main.py")
    (folder / "main.py").write_text(WHAT_IF_MAIN.format(source=source, ttl=TOKEN_CACHE_SECONDS))
    return folder.parent


# --- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime summed over `pids` (a vanished process counts 0; compare deltas)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def rss_mib(pids: list[int]) -> float:
    return sum((proc_kib(pid, "status", "VmRSS") or 0) for pid in pids) / 1024


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- seeding -------------------------------------------------------------------------------------


class RoutedApi(demo_seed.Api):
    """devstack.seed's API client, sending /api/<name>/... straight to that function."""

    def __init__(self, functions: dict[str, str]) -> None:
        super().__init__("http://unused")
        self.functions = functions

    def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)
    ) -> requests.Response:
        name = path.split("?")[0].split("/")[2]
        response = self.session.request(
            method, f"{self.functions[name]}{path}", json=body, timeout=self.timeout
        )
        if response.status_code not in ok:
            raise demo_seed.SeedError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response


SHOPS = [
    ("credit", "food", "Pão de Açúcar", 42315),
    ("credit", "food", "Carrefour", 38760),
    ("credit", "food", "Padaria Real", 2350),
    ("credit", "food", "iFood", 6490),
    ("credit", "transport", "Uber", 2390),
    ("credit", "transport", "99 Táxi", 3150),
    ("checking", "transport", "Posto Shell", 25000),
    ("credit", "leisure", "Cinema", 8900),
    ("credit", "shopping", "Amazon", 15990),
    ("checking", "health", "Drogasil", 12000),
    ("checking", "food", "Feira livre", 9540),
    ("checking", "bills", "Enel energia", 18990),
]


def plan(today: dt.date, months: int, per_month: int) -> list[dict[str, Any]]:
    """A deterministic household: salary, rent, bills, then daily purchases; never future."""
    out: list[dict[str, Any]] = []
    year, month = today.year, today.month
    starts = []
    for _ in range(months):
        starts.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    for index, first in enumerate(reversed(starts)):
        fixed = [
            ("checking", "income", "Salário ACME Ltda", 850000, 5),
            ("checking", "bills", "Aluguel", -220000, 6),
            ("savings", "savings", "Rendimento poupança", 5200 + index * 37, 1),
        ]
        rows = [(acc, cat, desc, amount, day) for acc, cat, desc, amount, day in fixed]
        for k in range(max(0, per_month - len(fixed))):
            acc, cat, desc, amount = SHOPS[(k * 7 + index * 3) % len(SHOPS)]
            day = 1 + (k * 29 + index * 5) % 28
            rows.append((acc, cat, desc, -(amount + (k * 131 + index * 57) % 900), day))
        for acc, cat, desc, amount, day in rows:
            when = first.replace(day=day)
            if when <= today:
                out.append(
                    {
                        "account": acc,
                        "category": cat,
                        "description": desc,
                        "amount": amount,
                        "date": when.isoformat(),
                    }
                )
    return out


@dataclass
class Seeded:
    email: str
    token: str
    user_id: str
    account_id: str
    month: str
    transactions: int
    in_account: int
    seconds: float


def seed_user(functions: dict[str, str], months: int, per_month: int) -> Seeded:
    began = time.monotonic()
    api = RoutedApi(functions)
    email = f"read-bench-{int(time.time())}@valorize.dev"
    registered = api.call(
        "POST",
        "/api/auth/register",
        {
            "email": email,
            "password": PASSWORD,
            "name": "Read Bench",
            "preferred_currency": "BRL",
            "locale": "pt-BR",
        },
    ).json()
    token = str(registered["token"])
    api.authenticate(token)
    me = api.call("GET", "/api/auth/me").json()
    categories = demo_seed._categories(api)
    accounts = demo_seed._accounts(api)
    today = dt.date.today()
    rows = plan(today, months, per_month)

    def post(row: dict[str, Any]) -> None:
        api.call(
            "POST",
            "/api/transactions",
            {
                "account_id": accounts[row["account"]],
                "amount": row["amount"],
                "date": row["date"],
                "description": row["description"],
                "category_id": categories[row["category"]],
            },
        )

    # Sequential: the ledger updates the account and month documents in the same write, and
    # the emulator serialises contended writes slowly.
    for row in rows:
        post(row)
    prev = (today.replace(day=1) - dt.timedelta(days=1)).isoformat()[:7]
    return Seeded(
        email=email,
        token=token,
        user_id=str(me.get("id", "")),
        account_id=accounts["checking"],
        month=prev,
        transactions=len(rows),
        in_account=sum(1 for r in rows if r["account"] == "checking"),
        seconds=time.monotonic() - began,
    )


# --- servers -------------------------------------------------------------------------------------


@dataclass
class Server:
    target: Target
    process: FunctionServer
    url: str
    pids: list[int]


def start_servers(
    stack: Stack,
    targets: list[Target],
    workers: int,
    threads: int,
    log_dir: Path,
    timeout: float,
) -> list[Server]:
    """The measured servers, all with the same WORKERS/THREADS; cold ones bypass Redis."""
    ports = free_ports(len(targets) + 1)
    closed_redis = ports.pop()  # bound by nobody: connection refused at once
    base = {**stack.env, "WORKERS": str(workers), "THREADS": str(threads)}
    servers: list[Server] = []
    try:
        for target, port in zip(targets, ports, strict=True):
            env = dict(base)
            if target.cache == "cold":
                # The first request's Redis call is refused and opens the breaker, which then
                # stays open for the whole run: every request computes from Firestore.
                env["REDIS_URL"] = f"redis://{HOST}:{closed_redis}/0"
                env["VALORIZE_CACHE_BREAKER_SECONDS"] = "86400"
            process = FunctionServer(
                target.folder,
                target.fn_target,
                port,
                log_dir,
                env,
                functions_dir=target.functions_dir,
                unset_env=STACK_ENV_KEYS,
            )
            process.name = f"bench-{workers}x{threads}-{target.key}"
            process.spawn()
            servers.append(Server(target, process, process.url, []))
        for server in servers:
            server.process.wait_ready(timeout)
            assert server.process.pid is not None
            server.pids = tree_pids(server.process.pid)
        # gunicorn forks its workers right after binding; wait until all are there.
        deadline = time.monotonic() + timeout
        for server in servers:
            assert server.process.pid is not None
            while len(server.pids) < 1 + workers and time.monotonic() < deadline:
                time.sleep(0.1)
                server.pids = tree_pids(server.process.pid)
    except BaseException:
        stop_all(s.process for s in servers)
        raise
    return servers


def stop_all(processes: Iterator[ManagedProcess] | list[ManagedProcess]) -> None:
    for process in list(processes):
        with contextlib.suppress(Exception):
            process.stop()


# --- probes --------------------------------------------------------------------------------------


def first_request(server: Server, path: str, token: str) -> dict[str, Any]:
    """Wall time and server CPU of one request to an instance that has served none."""
    cpu0 = cpu_seconds(server.pids)
    started = time.perf_counter()
    try:
        with requests.Session() as session:
            session.trust_env = False
            r = session.get(
                server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=120
            )
        status, outcome = r.status_code, r.headers.get("X-Cache", "-")
    except requests.RequestException as e:
        raise BenchError(f"{server.target.key}: first request failed: {e}") from e
    return {
        "wall_s": round(time.perf_counter() - started, 3),
        "server_cpu_s": round(cpu_seconds(server.pids) - cpu0, 2),
        "status": status,
        "x_cache": outcome,
    }


def probe(url: str, token: str, count: int, threads: int = 8) -> dict[str, Any]:
    """`count` requests from `threads` threads: status codes and X-Cache outcomes."""
    statuses: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one(_: int) -> None:
        with requests.Session() as session:
            session.trust_env = False
            try:
                # Generous: with WORKERS > 1 a probe may be another worker's first request.
                r = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
                status, outcome = str(r.status_code), r.headers.get("X-Cache", "-")
            except requests.RequestException as e:
                status, outcome = type(e).__name__, "-"
        with lock:
            statuses[status] += 1
            outcomes[outcome] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return {"status": dict(statuses), "x_cache": dict(outcomes)}


def serial_latency(
    url: str, token: str, count: int, before: Any = None
) -> dict[str, float | str | None]:
    """Median and p90 of `count` sequential requests on one keep-alive connection (ms)."""
    times: list[float] = []
    outcomes: Counter[str] = Counter()
    with requests.Session() as session:
        session.trust_env = False
        headers = {"Authorization": f"Bearer {token}"}
        session.get(url, headers=headers, timeout=10)
        for _ in range(count):
            if before is not None:
                before()
            started = time.perf_counter()
            r = session.get(url, headers=headers, timeout=10)
            times.append((time.perf_counter() - started) * 1000)
            outcomes[r.headers.get("X-Cache", "-")] += 1
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2),
        "x_cache": ",".join(f"{k}:{v}" for k, v in outcomes.items()),
    }


# --- wrk -----------------------------------------------------------------------------------------


@dataclass
class Watched:
    """Process trees whose CPU is recorded around every run."""

    firestore: list[int]
    redis: list[int]


def run_wrk(
    url: str,
    token: str,
    connections: int,
    duration: float,
    threads: int,
    workdir: Path,
    wrk_timeout_s: int,
) -> tuple[dict[str, Any], float]:
    """One wrk run; returns its done() summary and wrk's own CPU seconds (from wait4)."""
    script = workdir / "read.lua"
    if not script.exists():
        script.write_text(WRK_LUA)
    out = workdir / "wrk-summary.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "READ_BENCH_TOKEN": token, "READ_BENCH_OUT": str(out)}
    cmd = [
        shutil.which("wrk") or "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"--timeout={wrk_timeout_s}s",
        "-s",
        str(script),
        url,
    ]
    log = (workdir / "wrk.log").open("ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + duration + wrk_timeout_s + 30
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise BenchError(f"wrk did not finish within {duration + wrk_timeout_s + 30} s")
            time.sleep(0.05)
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(ChildProcessError):
                proc.wait(5)
        raise
    finally:
        log.close()
    if proc.returncode != 0 or not out.exists():
        tail = (workdir / "wrk.log").read_text(errors="replace").splitlines()[-10:]
        raise BenchError(f"wrk exited {proc.returncode}: " + " | ".join(tail))
    return json.loads(out.read_text()), usage.ru_utime + usage.ru_stime


def measure(
    server: Server,
    path: str,
    token: str,
    connections: int,
    duration: float,
    wrk_threads: int,
    watched: Watched,
    workdir: Path,
    wrk_timeout_s: int,
) -> dict[str, Any]:
    url = server.url + path
    cpu0 = cpu_seconds(server.pids)
    fs0, rd0 = cpu_seconds(watched.firestore), cpu_seconds(watched.redis)
    busy0, total0 = machine_busy()
    wall0 = time.monotonic()
    summary, wrk_cpu = run_wrk(
        url, token, connections, duration, wrk_threads, workdir, wrk_timeout_s
    )
    wall = time.monotonic() - wall0
    cpu = cpu_seconds(server.pids) - cpu0
    fs, rd = cpu_seconds(watched.firestore) - fs0, cpu_seconds(watched.redis) - rd0
    busy1, total1 = machine_busy()
    cores = len(os.sched_getaffinity(0))
    reqs = int(summary["requests"])
    secs = summary["duration_us"] / 1e6
    errors = sum(int(summary[k]) for k in ("connect", "read", "write", "status", "timeout"))
    busy = busy1 - busy0
    named = cpu + wrk_cpu + fs + rd
    return {
        "connections": connections,
        "requests": reqs,
        "seconds": round(secs, 3),
        "rps": round(reqs / secs, 1) if secs else 0.0,
        **{p: round(summary[f"{p}_us"] / 1000, 2) for p in PERCENTILES},
        "max_ms": round(summary["max_us"] / 1000, 1),
        "mean_ms": round(summary["mean_us"] / 1000, 2),
        "errors": errors,
        "errors_detail": {
            k: int(summary[k]) for k in ("connect", "read", "write", "status", "timeout")
        },
        "error_rate": round(errors / reqs, 5) if reqs else None,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_pct": round(100 * cpu / wall, 1),
        "server_cpu_s_per_1k": round(1000 * cpu / reqs, 3) if reqs else None,
        "wrk_cpu_s": round(wrk_cpu, 2),
        "wrk_cpu_pct": round(100 * wrk_cpu / wall, 1),
        "firestore_cpu_pct": round(100 * fs / wall, 1),
        "redis_cpu_pct": round(100 * rd / wall, 1),
        "machine_busy_pct": round(100 * busy / wall, 1),
        "machine_cores": cores,
        # Busy CPU not accounted for by the processes above: other tenants, idle functions.
        "other_cpu_pct": round(100 * max(0.0, busy - named) / wall, 1),
        "machine_total_s": round(total1 - total0, 2),
        "server_rss_mib": round(rss_mib(server.pids), 1),
        "wall_s": round(wall, 2),
        # Everything of ours on these cores: what the requests cost when nobody else runs.
        "all_cpu_s": round(named, 2),
    }


# --- profiling -----------------------------------------------------------------------------------

AUTH_LABEL = "auth: token check (memory + revocation feed)"
CACHE_LABEL = "cache: lookup (near cache in memory, else one Redis round trip)"

PROFILE_BUCKETS = (
    # (label, substring of a frame in the collapsed stack; inclusive share of samples)
    (AUTH_LABEL, "authenticate ("),
    (CACHE_LABEL, "get_or_render ("),
    ("query parsing (pydantic)", "_parse_query ("),
    ("cache key (remembered per query string)", "_cache_key ("),
    ("JSON response", "_json ("),
    ("request log line", "log_request ("),
    # Flask's own matching of functions-framework's one route (the bare one pays it too) and
    # ours for paths with ids (a path without is a dict lookup).
    ("routing (werkzeug: Flask's and ours)", "MapAdapter.match ("),
    ("inside the gRPC client", "grpc/_channel.py"),
    ("inside redis-py", "redis/connection.py"),
    ("pub/sub feeds (revocations, cache bumps)", "feeds.py"),
    ("json encode (response + log)", "json/encoder.py"),
    ("json decode (cached value)", "json/decoder.py"),
)


def profile(
    server: Server,
    path: str,
    token: str,
    connections: int,
    seconds: float,
    wrk_threads: int,
    workdir: Path,
    wrk_timeout_s: int,
    gil: bool = False,
) -> dict[str, Any] | None:
    """py-spy on the server while wrk loads it: inclusive share of samples per stage.

    Without `gil`, samples of every thread that is not idle (running or runnable: on a saturated
    machine that includes waiting for a core); with `gil`, only the thread holding the GIL, i.e.
    where the worker's Python CPU goes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() or server.process.pid is None:
        return None
    raw = workdir / f"pyspy-{server.target.key}-{'gil' if gil else 'active'}.txt"
    cmd = [
        spy,
        "record",
        "--pid",
        str(server.process.pid),
        "--subprocesses",
        "--nonblocking",
        *(["--gil"] if gil else []),
        "--format",
        "raw",
        "--rate",
        "200",
        "--duration",
        str(int(seconds)),
        "-o",
        str(raw),
    ]
    log = (workdir / "pyspy.log").open("ab")
    spy_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        time.sleep(1.0)
        run_wrk(server.url + path, token, connections, seconds, wrk_threads, workdir, wrk_timeout_s)
        spy_proc.wait(timeout=seconds + 30)
    except (subprocess.TimeoutExpired, BenchError):
        return None
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
            spy_proc.wait()
        log.close()
    if not raw.exists():
        return None
    total = 0
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        if "handle_request (" not in stack and "handle (" not in stack:
            continue  # gunicorn's own loop waiting for connections, the arbiter
        total += n
        for label, needle in PROFILE_BUCKETS:
            if needle in stack:
                buckets[label] += n
        leaf = stack.split(";")[-1]
        leaves[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split("/")[-1]] += n
    if not total:
        return None
    return {
        "samples": total,
        "inclusive_share": {k: round(v / total, 3) for k, v in buckets.most_common()},
        "top_leaves": [
            {"frame": k, "share": round(v / total, 3)} for k, v in leaves.most_common(8)
        ],
    }


# --- summary -------------------------------------------------------------------------------------


def med(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(
    runs: list[dict[str, Any]], connections: list[int], targets: list[Target]
) -> dict[str, Any]:
    """Per target and connection level: medians over rounds, ratios paired by round."""
    out: dict[str, Any] = {}
    for target in targets:
        levels: dict[str, Any] = {}
        for c in connections:
            mine = [r for r in runs if r["target"] == target.key and r["connections"] == c]
            if not mine:
                continue
            bare = {r["round"]: r for r in runs if r["target"] == "bare" and r["connections"] == c}
            ratios = [r["rps"] / bare[r["round"]]["rps"] for r in mine if r["round"] in bare]
            # Requests per server CPU-second against bare's, paired by round: the capacity
            # ratio of an instance with its own core, insensitive to how the machine's cores
            # were shared during the run (other tenants, scheduler groups).
            cpu_ratios = [
                (b["server_cpu_s"] / b["requests"]) / (r["server_cpu_s"] / r["requests"])
                for r in mine
                if (b := bare.get(r["round"])) and r["server_cpu_s"] and b["requests"]
            ]
            reqs = sum(r["requests"] for r in mine)
            cpu = sum(r["server_cpu_s"] for r in mine)
            cpu_per_req = cpu / reqs if reqs else None
            all_cpu = sum(r.get("all_cpu_s", 0.0) for r in mine)
            level = {
                "rounds": len(mine),
                "rps": med([r["rps"] for r in mine]),
                "rps_min": min(r["rps"] for r in mine),
                "rps_max": max(r["rps"] for r in mine),
                **{p: med([r[p] for r in mine]) for p in PERCENTILES},
                "errors": sum(r["errors"] for r in mine),
                "requests": reqs,
                "error_rate": round(sum(r["errors"] for r in mine) / reqs, 5) if reqs else None,
                "ratio_to_bare": round(statistics.median(ratios), 3) if ratios else None,
                "cpu_ratio_to_bare": (
                    round(statistics.median(cpu_ratios), 3) if cpu_ratios else None
                ),
                # #2: requests per CPU-second of server + wrk + emulator + Redis together.
                "req_per_core_s_all": round(reqs / all_cpu, 1) if all_cpu else None,
                "server_cpu_pct": med([r["server_cpu_pct"] for r in mine]),
                "server_cpu_s_per_1k": round(1000 * cpu_per_req, 3) if cpu_per_req else None,
                "wrk_cpu_pct": med([r["wrk_cpu_pct"] for r in mine]),
                "firestore_cpu_pct": med([r["firestore_cpu_pct"] for r in mine]),
                "redis_cpu_pct": med([r["redis_cpu_pct"] for r in mine]),
                "machine_busy_pct": med([r["machine_busy_pct"] for r in mine]),
                "other_cpu_pct": med([r["other_cpu_pct"] for r in mine]),
                "server_rss_mib_max": max(r["server_rss_mib"] for r in mine),
                # Cloud Run at full utilisation: billable vCPU-seconds = CPU seconds used.
                "usd_compute_per_million": (
                    round(
                        cpu_per_req * 1e6 * (PRICE_VCPU_SECOND + INSTANCE_GIB * PRICE_GIB_SECOND),
                        3,
                    )
                    if cpu_per_req
                    else None
                ),
            }
            if level["usd_compute_per_million"] is not None:
                level["usd_per_million"] = round(
                    level["usd_compute_per_million"] + PRICE_PER_MILLION_REQUESTS, 3
                )
            if target.cache in ("cached", "what-if"):
                slo = bool(
                    level["p95"] is not None
                    and level["p95"] <= P95_TARGET_MS
                    and level["errors"] == 0
                )
                level["meets_target_1"] = bool(
                    slo
                    and level["ratio_to_bare"] is not None
                    and level["ratio_to_bare"] >= RATIO_TARGET
                )
                level["meets_target_1_by_cpu"] = bool(
                    slo
                    and level["cpu_ratio_to_bare"] is not None
                    and level["cpu_ratio_to_bare"] >= RATIO_TARGET
                )
            levels[str(c)] = level
        out[target.key] = levels
    return out


# --- report --------------------------------------------------------------------------------------


def report_targets(report: dict[str, Any]) -> list[Target]:
    return [ALL_TARGETS[k] for k in report["config"]["targets"]]


def fmt(x: Any, digits: int | None = None) -> str:
    if x is None:
        return "-"
    if digits is not None and isinstance(x, (int, float)):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    cfg = report["config"]
    lines = [
        "# Read ceiling: cached reads beside a bare function "
        "(../shared/spec/TARGETS.md #1, #2, #9)",
        "",
        f"{report['date']} · {m['cpus_usable']} CPUs ({m['cpu_model']}) · Python {m['python']} · "
        f"functions-framework {m['versions'].get('functions-framework')} · gunicorn "
        f"{m['versions'].get('gunicorn')} · commit {m['git_commit']} · wrk {cfg['wrk_threads']} "
        f"threads, {cfg['duration_s']:g} s per run, {cfg['rounds']} interleaved rounds · "
        f"load average {report['loadavg_before']} → {report['loadavg_after']}",
        "",
        f"Seeded user: {report['seed']['transactions']} transactions over "
        f"{cfg['months']} months, {report['seed']['in_account']} in the listed account; "
        f"summary month {report['seed']['month']}. Requests: "
        + ", ".join(
            f"`{k}` {v}" for k, v in report["paths"].items() if k in ("dashboard", "transactions")
        )
        + ".",
        "",
    ]
    for config in report["servers"]:
        s = config["summary"]
        lines += [
            f"## Server WORKERS={config['workers']} THREADS={config['threads']} "
            f"({'gthread' if config['threads'] > 1 else 'sync'} worker)",
            "",
            "| target | conns | req/s (min to max) | x bare req/s | x bare CPU | P50 ms | P95 ms "
            "| P99 ms | errors | server CPU % | CPU-s / 1k req | wrk CPU % | Firestore CPU % "
            "| Redis CPU % | other CPU % | req per core-s (ours) | CPU+mem $ / 1M req "
            "| #1 req/s | #1 CPU |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | ---: | ---: | ---: | :---: | :---: |",
        ]

        def verdict(lv: dict[str, Any], key: str) -> str:
            return "-" if key not in lv else ("yes" if lv[key] else "**no**")

        for c in cfg["connections"]:
            for target in report_targets(report):
                lv = s.get(target.key, {}).get(str(c))
                if not lv:
                    continue
                name = f"{target.endpoint_name} ({target.label})"
                lines.append(
                    f"| {name} | {c} | {fmt(lv['rps'], 0)} ({fmt(lv['rps_min'], 0)} to "
                    f"{fmt(lv['rps_max'], 0)}) | {fmt(lv['ratio_to_bare'], 2)} "
                    f"| {fmt(lv.get('cpu_ratio_to_bare'), 2)} "
                    f"| {fmt(lv['p50'], 1)} | {fmt(lv['p95'], 1)} | {fmt(lv['p99'], 1)} "
                    f"| {lv['errors']} | {fmt(lv['server_cpu_pct'], 0)} "
                    f"| {fmt(lv['server_cpu_s_per_1k'], 2)} | {fmt(lv['wrk_cpu_pct'], 0)} "
                    f"| {fmt(lv['firestore_cpu_pct'], 0)} | {fmt(lv['redis_cpu_pct'], 0)} "
                    f"| {fmt(lv['other_cpu_pct'], 0)} | {fmt(lv.get('req_per_core_s_all'), 0)} "
                    f"| {fmt(lv['usd_compute_per_million'], 3)} "
                    f"| {verdict(lv, 'meets_target_1')} | {verdict(lv, 'meets_target_1_by_cpu')} |"
                )
        lines.append("")
        if config.get("first_request"):
            lines += [
                "First request of a fresh instance (wall s / server CPU s; the lazy imports and "
                "client connections happen here, after /healthz already answered): "
                + "; ".join(
                    f"{k} {v['wall_s']:.2f} / {v['server_cpu_s']:.2f}"
                    for k, v in config["first_request"].items()
                )
                + ".",
                "",
            ]
        if config.get("serial"):
            lines += [
                "Single requests, one at a time on one keep-alive connection (median / p90 ms): "
                + "; ".join(
                    f"{k} {v['median_ms']} / {v['p90_ms']}" for k, v in config["serial"].items()
                )
                + ".",
                "",
            ]
        for key, modes in (config.get("profile") or {}).items():
            for mode, prof in modes.items():
                if not prof:
                    continue
                shares = ", ".join(
                    f"{k} {100 * v:.0f} %" for k, v in prof["inclusive_share"].items()
                )
                leaves = ", ".join(
                    f"`{t['frame']}` {100 * t['share']:.0f} %" for t in prof["top_leaves"][:5]
                )
                what = (
                    "samples holding the GIL (Python CPU)"
                    if mode == "gil"
                    else "active samples (running or waiting for a core)"
                )
                lines += [
                    f"py-spy on `{key}`, {prof['samples']} {what} in request handling at "
                    f"{cfg['profile_connections']} connections: {shares}. Hottest frames: "
                    f"{leaves}.",
                    "",
                ]
        if config.get("verify"):
            lines += [
                "X-Cache check (concurrent probes before and after the runs): "
                + "; ".join(
                    f"{k} {v['after']['x_cache']}" for k, v in config["verify"].items() if v
                )
                + ".",
                "",
            ]
    lines += ["## Interpretation", "", interpretation(report), "", method_text(report), ""]
    return "\n".join(lines)


def method_text(report: dict[str, Any]) -> str:
    what_if = (
        f" The what-if target is functions/transactions/main.py loaded by a generated wrapper "
        f"that memoises `authenticate` per token for {TOKEN_CACHE_SECONDS} s in-process "
        "(shared code untouched); it sizes that fix, it is not a proposal to ship as is."
        if "transactions_tokencache" in report["config"]["targets"]
        else ""
    )
    return (
        "Method: every target is its own functions-framework process (gunicorn, the stated "
        "WORKERS/THREADS), started the same way with the same environment; the uncached ones "
        "differ only in `REDIS_URL` (a closed port) and `VALORIZE_CACHE_BREAKER_SECONDS=86400`: "
        "the first Redis call is refused and opens the breaker, after which each request is "
        "`X-Cache: bypass` and reads Firestore with no Redis round trip at all (a real miss "
        "adds about four Redis commands to that; see the serial line). wrk sends the same "
        "`Authorization` header to every target, also the bare one. Latency percentiles are "
        "wrk's (coordinated omission not corrected: a closed loop of N connections). Server CPU "
        "is utime+stime of the gunicorn master and workers over the run (/proc, 10 ms ticks); "
        "wrk's from wait4; `other CPU` is the machine's busy time (/proc/stat, all cores) minus "
        "the server, wrk, Firestore emulator and Redis (100 % = one core). Cost: "
        f"${PRICE_VCPU_SECOND} per vCPU-second and ${PRICE_GIB_SECOND} per GiB-second "
        f"({INSTANCE_GIB} GiB instance), billed as if the instance's vCPU were busy exactly "
        "the CPU time measured (a floor: idle instance time is billed too); the request fee "
        f"(${PRICE_PER_MILLION_REQUESTS} per million) comes on top (`usd_per_million` in the "
        "JSON) and Firestore's per-read charges are not included. A core here is not exactly "
        f"a Cloud Run vCPU.{what_if} Raw runs in `read.json`."
    )


def _span(values: list[float], pct: bool = True) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    f = "{:.0%}" if pct else "{:.0f}"
    return f.format(lo) if f.format(lo) == f.format(hi) else f"{f.format(lo)} to {f.format(hi)}"


def interpretation(report: dict[str, Any]) -> str:
    parts: list[str] = []
    conns = [str(c) for c in report["config"]["connections"]]
    for config in report["servers"]:
        s = config["summary"]
        name = f"WORKERS={config['workers']} THREADS={config['threads']}"

        def col(key: str, field: str, s: dict[str, Any] = s) -> list[Any]:
            return [s[key][c][field] for c in conns if c in s.get(key, {})]

        bare_cpu = statistics.median(col("bare", "server_cpu_s_per_1k"))
        verdicts = []
        for key in ("dashboard", "transactions"):
            if not s.get(key):
                continue
            met = all(col(key, "meets_target_1"))
            met_cpu = all(col(key, "meets_target_1_by_cpu"))
            verdicts.append(
                f"cached {key}: {_span(col(key, 'ratio_to_bare'))} of bare's req/s and "
                f"{_span(col(key, 'cpu_ratio_to_bare'))} of its requests per CPU-second "
                f"({statistics.median(col(key, 'server_cpu_s_per_1k')):.2f} CPU-s per 1k "
                f"requests), P95 {_span(col(key, 'p95'), pct=False)} ms; uncached "
                f"{_span(col(key + '_cold', 'cpu_ratio_to_bare'))} by CPU "
                f"({statistics.median(col(key + '_cold', 'server_cpu_s_per_1k')):.2f} CPU-s "
                f"per 1k). Target #1 {'met' if met else 'not met'} by req/s, "
                f"{'met' if met_cpu else 'not met'} by CPU"
            )
        per_core = ""
        if s.get("transactions"):
            lo, hi = ORIGINAL_READ_PER_VCPU
            ours = statistics.median(col("transactions", "req_per_core_s_all"))
            best = max(col("transactions", "rps"))
            cores = report["machine"]["cpus_usable"]
            per_core = (
                f" #2: cached transactions served {ours:.0f} requests per CPU-second of all "
                f"our processes together (function + wrk + emulator + Redis), "
                f"{ours / hi:.1f} to {ours / lo:.1f}x the original's {lo:.0f} to {hi:.0f} per "
                f"vCPU (target {PER_CORE_TARGET:.0f}x); by wall clock, best {best:.0f} req/s "
                f"on {cores} shared cores, {best / cores:.0f} per core."
            )
        what_if = ""
        if s.get("transactions_tokencache") and s.get("transactions"):
            what_if = (
                f" What-if, token checks memoised: cached transactions at "
                f"{_span(col('transactions_tokencache', 'cpu_ratio_to_bare'))} of bare by CPU "
                f"({statistics.median(col('transactions_tokencache', 'server_cpu_s_per_1k')):.2f}"
                f" CPU-s per 1k, from "
                f"{statistics.median(col('transactions', 'server_cpu_s_per_1k')):.2f}) and "
                f"{_span(col('transactions_tokencache', 'ratio_to_bare'))} by req/s, no "
                "Firestore work per hit."
            )
        parts.append(
            f"**{name}**: bare {_span(col('bare', 'rps'), pct=False)} req/s, {bare_cpu:.2f} "
            "CPU-s per 1k requests. " + "; ".join(verdicts) + "." + per_core + what_if
        )
    firsts = [
        (k, v) for config in report["servers"] for k, v in config.get("first_request", {}).items()
    ]
    heavy = [v["server_cpu_s"] for k, v in firsts if k != "bare"]
    bare_first = [v["server_cpu_s"] for k, v in firsts if k == "bare"]
    if heavy:
        parts.append(
            f"The first request of a fresh instance costs {min(heavy):.2f} to "
            f"{max(heavy):.2f} s of server CPU (bare: {max(bare_first or [0]):.2f} s) and "
            f"{_span([v['wall_s'] for k, v in firsts if k != 'bare'], pct=False)} s of wall "
            "time here: the clients (Firestore/gRPC, Redis) are imported and connected on first "
            "use, after `/healthz` has already answered, so target #7's cold start does not "
            "include it; concurrent first requests all wait for it (with 8 threads and a busy "
            "machine a probe saw 7 to 14 s). Each gunicorn worker pays it once."
        )
    prof_notes = []
    for config in report["servers"]:
        for key, modes in (config.get("profile") or {}).items():
            shares = {m: (p or {}).get("inclusive_share", {}) for m, p in modes.items()}
            if not any(shares.values()):
                continue
            auth = {m: v.get(AUTH_LABEL, 0) for m, v in shares.items()}
            cache = {m: v.get(CACHE_LABEL, 0) for m, v in shares.items()}
            prof_notes.append(
                f"{key} ({config['workers']}x{config['threads']}): token check "
                f"{auth.get('gil', 0):.0%} of Python CPU ({auth.get('active', 0):.0%} of "
                f"active time), cache lookup {cache.get('gil', 0):.0%} "
                f"({cache.get('active', 0):.0%})"
            )
    if prof_notes:
        parts.append(
            "Where a cached request goes (py-spy, inclusive shares of request handling): "
            + "; ".join(prof_notes)
            + ". A cache hit reads the instance's one pub/sub subscription (token "
            "revocations and cache bumps) once, without a lock when nothing has arrived (one "
            "poll of its socket), checks its token in the instance's memory, takes the "
            "query's cache key remembered for that query string (validated the first time) "
            "and the answer from the instance's memory (the near cache; one Redis round "
            "trip, the Lua lookup of version and entry, only when the instance has not "
            "served it since the user's last write), writes the stored bytes out as they "
            "are and its log line straight to stdout; the bare function does none of that."
        )
    levels = [
        lv for config in report["servers"] for t in config["summary"].values() for lv in t.values()
    ]
    if levels:
        wrk = [lv["wrk_cpu_pct"] for lv in levels]
        others = [lv["other_cpu_pct"] for lv in levels]
        limit = (
            "not the limit"
            if max(wrk) < 50
            else "a large share: near the top it may be part of the limit"
        )
        parts.append(
            f"wrk used {_span(wrk, pct=False)} % of a core ({limit}). Busy CPU outside our "
            f"processes (other tenants of this shared machine) was {_span(others, pct=False)} % "
            "of a core (median per level). Under contention the kernel shares CPU per session "
            "(autogroup scheduling is on here, and every server, the emulator and Redis run in "
            "their own session), so a target whose work is spread over the function, the "
            "emulator and Redis is most likely handed more CPU than the bare function alone: "
            "on a busy machine the bare function's req/s drops most (compare its server CPU % "
            "with the cached ones'), which flatters and scatters the req/s ratios. The CPU "
            "ratio (requests per server CPU-second against bare's, same round) does not depend "
            "on that share and is the better estimate of what one Cloud Run instance with its "
            "own vCPU would sustain."
        )
    return "\n\n".join(parts)


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return False
    configs = report["servers"]
    conns = report["config"]["connections"]
    fig, axes = plt.subplots(len(configs), 5, figsize=(22, 4.2 * len(configs)), squeeze=False)
    styles = {
        "bare": ("black", "-", "o"),
        "dashboard": ("tab:blue", "-", "s"),
        "transactions": ("tab:orange", "-", "^"),
        "dashboard_cold": ("tab:blue", "--", "s"),
        "transactions_cold": ("tab:orange", "--", "^"),
        "transactions_tokencache": ("tab:green", ":", "D"),
    }
    for row, config in zip(axes, configs, strict=True):
        s = config["summary"]
        for col, (metric, title) in enumerate(
            [
                ("rps", "requests/s"),
                ("p50", "P50 ms"),
                ("p95", "P95 ms"),
                ("p99", "P99 ms"),
                ("server_cpu_s_per_1k", "server CPU-s per 1k requests"),
            ]
        ):
            ax = row[col]
            for target in report_targets(report):
                levels = s.get(target.key, {})
                xs = [c for c in conns if str(c) in levels]
                ys = [levels[str(c)][metric] for c in xs]
                if not xs:
                    continue
                color, ls, marker = styles[target.key]
                label = f"{target.endpoint_name} ({target.label})"
                ax.plot(xs, ys, color=color, linestyle=ls, marker=marker, label=label)
            if metric == "p95":
                ax.axhline(P95_TARGET_MS, color="red", linewidth=0.8, linestyle=":")
                ax.text(
                    conns[0], P95_TARGET_MS, " SLO 300 ms", color="red", va="bottom", fontsize=8
                )
            if metric != "rps":
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xscale("log", base=2)
            ax.set_xticks(conns)
            ax.set_xticklabels([str(c) for c in conns])
            ax.set_xlabel("wrk connections")
            ax.set_title(
                f"{title} — WORKERS={config['workers']} THREADS={config['threads']}", fontsize=10
            )
            ax.grid(True, which="both", alpha=0.3)
        row[0].legend(fontsize=8)
    fig.suptitle(
        f"Read ceiling, {report['date']} · {report['machine']['cpus_usable']} cores, "
        f"commit {report['machine']['git_commit']} (medians of {report['config']['rounds']} "
        "rounds)",
        fontsize=11,
    )
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True


# --- main ----------------------------------------------------------------------------------------


def parse_server(spec: str) -> tuple[int, int]:
    try:
        workers, threads = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: use WORKERSxTHREADS, e.g. 1x8") from None
    if workers < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"{spec!r}: both must be >= 1")
    return workers, threads


def watched_trees(stack: Stack) -> Watched:
    firestore: list[int] = []
    redis_pids: list[int] = []
    for pid in stack.pids():
        line = cmdline(pid)
        if "emulators firestore" in line:
            firestore = tree_pids(pid)
        elif "redis-server" in line:
            redis_pids = tree_pids(pid)
    return Watched(firestore, redis_pids)


def run_config(
    args: argparse.Namespace,
    stack: Stack,
    seeded: Seeded,
    paths: dict[str, str],
    workers: int,
    threads: int,
    watched: Watched,
    workdir: Path,
    targets: list[Target],
) -> dict[str, Any]:
    print(
        f"servers WORKERS={workers} THREADS={threads}: starting {len(targets)} functions",
        flush=True,
    )
    servers = start_servers(stack, targets, workers, threads, workdir / "logs", args.timeout)
    by_key = {s.target.key: s for s in servers}
    runs: list[dict[str, Any]] = []
    verify: dict[str, Any] = {}
    serial: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    first: dict[str, Any] = {}
    try:
        # The first request of a fresh instance imports and connects the clients (bootstrap is
        # lazy so that /healthz, and target #7, stay fast): time it alone, CPU included.
        for s in servers:
            first[s.target.key] = first_request(s, paths[s.target.key], seeded.token)
        for s in servers:
            before = probe(s.url + paths[s.target.key], seeded.token, 40)
            verify[s.target.key] = {"before": before}
            bad = {k: v for k, v in before["status"].items() if k != "200"}
            if bad:
                raise BenchError(f"{s.target.key}: probe answered {before}; see {workdir}/logs")
        # Warm-up: connection pools, gRPC channels, every worker's first requests.
        for s in servers:
            run_wrk(
                s.url + paths[s.target.key],
                seeded.token,
                max(args.connections),
                2,
                args.wrk_threads,
                workdir,
                args.wrk_timeout,
            )
        total = args.rounds * len(args.connections) * len(servers)
        done = 0
        for rnd in range(args.rounds):
            for ci, c in enumerate(args.connections):
                shift = (rnd + ci) % len(servers)
                order = servers[shift:] + servers[:shift]
                for s in order:
                    result = measure(
                        s,
                        paths[s.target.key],
                        seeded.token,
                        c,
                        args.duration,
                        args.wrk_threads,
                        watched,
                        workdir,
                        args.wrk_timeout,
                    )
                    result |= {"target": s.target.key, "round": rnd + 1}
                    runs.append(result)
                    done += 1
                    print(
                        f"  [{done:>3}/{total}] round {rnd + 1} c={c:<3} {s.target.key:<18} "
                        f"{result['rps']:>7.0f} req/s  p50 {result['p50']:>6.1f}  "
                        f"p95 {result['p95']:>6.1f}  p99 {result['p99']:>6.1f} ms  "
                        f"err {result['errors']:<4} server {result['server_cpu_pct']:>4.0f}%  "
                        f"wrk {result['wrk_cpu_pct']:>3.0f}%  "
                        f"fs {result['firestore_cpu_pct']:>3.0f}%  "
                        f"redis {result['redis_cpu_pct']:>3.0f}%  "
                        f"other {result['other_cpu_pct']:>3.0f}%",
                        flush=True,
                    )
        for s in servers:
            verify[s.target.key]["after"] = probe(s.url + paths[s.target.key], seeded.token, 40)
        # One request at a time: what each path costs without queueing.
        client = redis.Redis.from_url(stack.env["REDIS_URL"])
        try:
            for key in by_key:
                serial[key] = serial_latency(
                    by_key[key].url + paths[key], seeded.token, args.serial
                )
            for key in ("dashboard", "transactions"):
                # Bumping the user's version before each request makes it a real miss.
                serial[f"{key}_miss"] = serial_latency(
                    by_key[key].url + paths[key],
                    seeded.token,
                    args.serial,
                    before=lambda: client.incr(f"cache:{seeded.user_id}:v"),
                )
        finally:
            client.close()
        if args.profile:
            for key in [k for k in by_key if ALL_TARGETS[k].cache in ("cached", "what-if")]:
                profiles[key] = {
                    mode: profile(
                        by_key[key],
                        paths[key],
                        seeded.token,
                        args.profile_connections,
                        8,
                        args.wrk_threads,
                        workdir,
                        args.wrk_timeout,
                        gil=mode == "gil",
                    )
                    for mode in ("active", "gil")
                }
    finally:
        stop_all([s.process for s in servers])
    return {
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "runs": runs,
        "summary": summarize(runs, args.connections, targets),
        "verify": verify,
        "serial": serial,
        "first_request": first,
        "profile": profiles,
    }


def run(args: argparse.Namespace) -> int:
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed (apt-get install -y wrk)")
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="valorize-read-"))
    print(f"read: work files and logs in {workdir}", flush=True)
    config = StackConfig(
        storage=False,
        tasks=False,
        smtp=False,
        gateway=False,
        functions=["auth", "accounts", "categories", "transactions"],
        log_dir=workdir / "stack",
        startup_timeout=args.timeout,
        # Seeding writes hundreds of transactions for one user in seconds.
        extra_env={"VALORIZE_WRITE_RATE": "100000/minute"},
    )
    configs: list[dict[str, Any]] = []
    with Stack(config) as stack:
        print(f"stack up in {stack.startup_seconds:.1f} s; seeding", flush=True)
        seeded = seed_user(stack.urls.functions, args.months, args.per_month)
        print(
            f"seeded {seeded.transactions} transactions ({seeded.in_account} in the account) "
            f"in {seeded.seconds:.1f} s",
            flush=True,
        )
        if not seeded.user_id:
            raise BenchError("GET /api/auth/me gave no user id")
        paths = {
            t.key: t.endpoint.format(month=seeded.month, account=seeded.account_id)
            for t in ALL_TARGETS.values()
        }
        watched = watched_trees(stack)
        targets = list(TARGETS)
        if args.what_if:
            targets.append(dataclasses.replace(WHAT_IF, functions_dir=write_what_if(workdir)))
        for workers, threads in args.servers:
            configs.append(
                run_config(args, stack, seeded, paths, workers, threads, watched, workdir, targets)
            )
    report: dict[str, Any] = {
        "benchmark": "read",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info() | {"wrk": wrk_version()},
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "config": {
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "wrk_threads": args.wrk_threads,
            "wrk_timeout_s": args.wrk_timeout,
            "months": args.months,
            "per_month": args.per_month,
            "serial_requests": args.serial,
            "profile_connections": args.profile_connections,
            "targets": [t.key for t in targets],
            "token_cache_seconds_what_if": TOKEN_CACHE_SECONDS if args.what_if else None,
            "uncached_how": "REDIS_URL on a closed port + breaker held open (X-Cache: bypass)",
        },
        "targets": {
            "ratio_to_bare_min": RATIO_TARGET,
            "p95_ms_max": P95_TARGET_MS,
            "per_core_vs_original_min": PER_CORE_TARGET,
            "original_read_req_s_per_vcpu": ORIGINAL_READ_PER_VCPU,
        },
        "prices": {
            "usd_per_vcpu_second": PRICE_VCPU_SECOND,
            "usd_per_gib_second": PRICE_GIB_SECOND,
            "instance_gib": INSTANCE_GIB,
            "usd_per_million_requests": PRICE_PER_MILLION_REQUESTS,
        },
        "seed": {
            "transactions": seeded.transactions,
            "in_account": seeded.in_account,
            "month": seeded.month,
            "seconds": round(seeded.seconds, 1),
        },
        "paths": {k: v for k, v in paths.items() if not k.endswith("_cold")},
        "servers": configs,
        "work_dir": str(workdir),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "read.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md = markdown(report)
    if plot(report, out / "read.png"):
        md += "\n![P50/P95/P99 and req/s per concurrency](read.png)\n"
    write_atomic(out / "read.md", md)
    print(md)
    print(f"wrote {out / 'read.json'}, {out / 'read.md'} and {out / 'read.png'}")
    failed = [
        (c["workers"], c["threads"], k, lv)
        for c in configs
        for k, levels in c["summary"].items()
        for lv in levels.values()
        if lv["errors"]
    ]
    if failed:
        print(f"error: {len(failed)} target/level(s) had errors", file=sys.stderr)
        return 1
    return 0


def wrk_version() -> str | None:
    try:
        proc = subprocess.run(
            ["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--servers",
        nargs="+",
        type=parse_server,
        default=[(1, 8), (2, 1)],
        metavar="WxT",
        help="gunicorn WORKERSxTHREADS, one set of runs each "
        "(default: 1x8, functions-framework's default here, and 2x1)",
    )
    parser.add_argument("--connections", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--wrk-timeout",
        type=int,
        default=5,
        help="seconds before wrk counts a request as timed out",
    )
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--per-month", type=int, default=30)
    parser.add_argument(
        "--serial",
        type=int,
        default=200,
        help="sequential requests per path for the single-request latencies",
    )
    parser.add_argument(
        "--no-profile",
        dest="profile",
        action="store_false",
        help="skip the py-spy pass on the cached functions",
    )
    parser.add_argument("--profile-connections", type=int, default=32)
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="also serve cached transactions with authentication memoised in-process "
        f"({TOKEN_CACHE_SECONDS} s), to size that fix",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds allowed for the stack and each server to start",
    )
    parser.add_argument("--out", default=str(ROOT / "load" / "results"))
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or min(args.connections) < 1:
        parser.error("--rounds, --duration and --connections must be positive")
    args.connections = sorted(set(args.connections))

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except (BenchError, demo_seed.SeedError, ServiceError, StackStartError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
