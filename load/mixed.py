"""Mixed scenario: the original's 65/20/15 mix as a stepped Locust run (TARGETS.md #2, #3, #9).

Starts the local stack with devstack (Firestore emulator, Redis, the Cloud Tasks emulator; the
auth, accounts, categories and transactions functions behind the gateway; VALORIZE_WRITE_RATE
raised so the per-user write limit never throttles the benchmark), then runs Locust headless
in a subprocess on load/mixed_locustfile.py: every virtual user registers its own user, creates
two accounts and a few seed transactions, then loops (1 s think time) over 65 % filtered
transaction lists (page of 15), 20 % creates and 15 % account lists. The load shape steps the
users up through `--stages`; each stage's statistics cover only its measuring window (after
every user of the stage finished its setup and `--settle` s passed) and are written by Locust
as CSV, which this script turns into the report.

Meanwhile it samples, once a second from /proc, the CPU time of our server processes (the
functions' gunicorn trees and the gateway), of the Firestore emulator, of Redis, of the tasks
emulator, of the Locust process (the generator: a saturated generator is not a slow server)
and the machine's busy time (the rest is other tenants).

Reported per stage: users, req/s, P50/P95/P99, error %, each request kind's P95, CPU per
component; then the highest stage that holds P95 <= 300 ms and < 0.5 % errors (#3), its req/s
per core our server processes used and per machine core beside the original's ~45 req/s per
vCPU (#2 asks >= 3x), and CPU-seconds per 1,000 requests with the Cloud Run price (#9).

    python load/mixed.py [--stages 25 50 100 ...] [--window 30] [--out load/results]
    nox -s bench -- mixed

Writes `<out>/mixed.json`, `<out>/mixed.md`, `<out>/mixed.png` (matplotlib) and keeps Locust's
CSV files in `<out>/mixed_csv/`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.metadata
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "load"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from coldstart import machine_info, tree_pids, write_atomic  # noqa: E402
from mixed_shape import (  # noqa: E402
    DEFAULT_STAGES,
    ERROR_SLO,
    MIX,
    ORIGINAL_REQ_S_PER_VCPU,
    P95_SLO_MS,
    PER_CORE_FACTOR,
    SETUP_PREFIX,
    meets_slo,
)
from read import (  # noqa: E402
    INSTANCE_GIB,
    PRICE_GIB_SECOND,
    PRICE_PER_MILLION_REQUESTS,
    PRICE_VCPU_SECOND,
    cmdline,
    cpu_seconds,
    machine_busy,
)

from devstack.stack import Stack, StackConfig  # noqa: E402

FUNCTIONS = ["auth", "accounts", "categories", "transactions"]
LOCUSTFILE = ROOT / "load" / "mixed_locustfile.py"
COMPONENTS = ("functions", "gateway", "firestore", "redis", "tasks", "generator")
SAMPLE_EVERY = 1.0


class BenchError(RuntimeError):
    pass


# --- CPU sampling --------------------------------------------------------------------------------


def classify(roots: list[int]) -> dict[str, list[int]]:
    """Stack process-group leaders -> component name (by command line)."""
    groups: dict[str, list[int]] = {c: [] for c in COMPONENTS}
    for pid in roots:
        line = cmdline(pid)
        if "devstack.gateway" in line:
            groups["gateway"].append(pid)
        elif "functions-framework" in line or "functions_framework" in line:
            groups["functions"].append(pid)
        elif "firestore" in line:
            groups["firestore"].append(pid)
        elif "redis-server" in line:
            groups["redis"].append(pid)
        else:
            groups["tasks"].append(pid)
    return groups


@dataclass
class Sampler:
    """CPU seconds of every component's process trees and the machine, once a second."""

    roots: dict[str, list[int]]
    samples: list[dict[str, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def trees(self) -> dict[str, list[int]]:
        return {c: [p for r in roots for p in tree_pids(r)] for c, roots in self.roots.items()}

    def sample(self, trees: dict[str, list[int]]) -> None:
        busy, total = machine_busy()
        row = {c: cpu_seconds(pids) for c, pids in trees.items()}
        row.update(t=time.time(), machine_busy=busy, machine_total=total)
        self.samples.append(row)

    def run(self) -> None:
        trees, count = self.trees(), 0
        while not self.stop.wait(SAMPLE_EVERY):
            count += 1
            if count % 3 == 0:  # gunicorn workers and the generator appear late
                trees = self.trees()
            self.sample(trees)
        self.sample(trees)

    def window(self, start: float, end: float) -> dict[str, float]:
        """Cores used by each component over [start, end] (from the samples around it)."""
        before = [s for s in self.samples if s["t"] <= start]
        after = [s for s in self.samples if s["t"] >= end]
        if not before or not after:
            raise BenchError("no CPU samples around a stage window")
        a, b = before[-1], after[0]
        span = b["t"] - a["t"]
        cores = {c: (b[c] - a[c]) / span for c in COMPONENTS}
        cores["machine"] = (b["machine_busy"] - a["machine_busy"]) / span
        cores["others"] = max(0.0, cores["machine"] - sum(cores[c] for c in COMPONENTS))
        return cores


# --- Locust --------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None  # Locust writes "N/A" for an entry without requests


def stage_figures(row: dict[str, Any], rows: list[dict[str, str]]) -> dict[str, Any]:
    """One stage's window from Locust's CSV: the mix's requests and the aggregate percentiles."""
    seconds = row["close"] - row["open"]
    kinds: dict[str, dict[str, Any]] = {}
    setup = 0
    for r in rows:
        if r["Name"] == "Aggregated":
            continue
        if r["Name"].startswith(SETUP_PREFIX):
            setup += int(r["Request Count"])
            continue
        kinds[r["Name"]] = {
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "p50_ms": number(r["50%"]),
            "p95_ms": number(r["95%"]),
            "p99_ms": number(r["99%"]),
        }
    agg = next(r for r in rows if r["Name"] == "Aggregated")
    requests = sum(k["requests"] for k in kinds.values())
    failures = sum(k["failures"] for k in kinds.values())
    return {
        "stage": row["stage"],
        "users": row["users"],
        "user_count": row["user_count"],
        "setup_failures": row["setup_failures"],
        "window_s": round(seconds, 2),
        "requests": requests,
        "failures": failures,
        # Setup requests inside the window (a user still setting up): they are in the
        # aggregate percentiles, so the report shows how many.
        "setup_requests_in_window": setup,
        "rps": requests / seconds,
        "error_ratio": failures / requests if requests else 1.0,
        "p50_ms": number(agg["50%"]),
        "p95_ms": number(agg["95%"]),
        "p99_ms": number(agg["99%"]),
        "kinds": kinds,
    }


def register_figures(path: Path) -> dict[str, Any]:
    """Registrations during a stage's ramp (argon2id hashing: the costly part of a setup)."""
    rows = read_csv(path) if path.exists() else []
    row = next((r for r in rows if r["Name"] == SETUP_PREFIX + "register"), None)
    if row is None:
        return {"requests": 0}
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50_ms": number(row["50%"]),
        "p95_ms": number(row["95%"]),
    }


def run_locust(
    args: argparse.Namespace, base_url: str, workdir: Path, sampler: Sampler
) -> tuple[int, float]:
    prefix = workdir / "mixed"
    env = {
        **os.environ,
        "MIXED_STAGES": ",".join(str(s) for s in args.stages),
        "MIXED_SETTLE": str(args.settle),
        "MIXED_WINDOW": str(args.window),
        "MIXED_SETUP_TIMEOUT": str(args.setup_timeout),
        "MIXED_PREFIX": str(prefix),
        "MIXED_SEED_TRANSACTIONS": str(args.seed_transactions),
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", base_url, "--csv", str(prefix), "--loglevel", "WARNING",
        "--only-summary", "--exit-code-on-error", "0",
    ]  # fmt: skip
    limit = len(args.stages) * (args.setup_timeout + args.settle + args.window + 10) + 60
    started = time.monotonic()
    with (workdir / "locust.log").open("w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler.roots["generator"] = [proc.pid]
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(30)
            raise BenchError(f"locust still running after {limit:.0f} s") from None
    return code, time.monotonic() - started


# --- report --------------------------------------------------------------------------------------


def price_per_million(cpu_s_per_1k: float) -> float:
    """Cloud Run instance price of the CPU measured, billed as if busy exactly that long."""
    seconds = cpu_s_per_1k * 1000
    return seconds * (PRICE_VCPU_SECOND + PRICE_GIB_SECOND * INSTANCE_GIB)


def summarise(stages: list[dict[str, Any]], cpus: int) -> dict[str, Any]:
    for s in stages:
        cpu = s["cpu_cores"]
        s["server_cores"] = cpu["functions"] + cpu["gateway"]
        s["ours_cores"] = sum(cpu[c] for c in COMPONENTS)
        done = s["requests"] / 1000 or 1
        s["server_cpu_s_per_1k"] = s["server_cores"] * s["window_s"] / done
        s["functions_cpu_s_per_1k"] = cpu["functions"] * s["window_s"] / done
        s["ours_cpu_s_per_1k"] = s["ours_cores"] * s["window_s"] / done
        s["meets_slo"] = meets_slo(s["p95_ms"], s["error_ratio"])
    passing = [s for s in stages if s["meets_slo"]]
    best = max(passing, key=lambda s: s["users"]) if passing else None
    out: dict[str, Any] = {"best_stage": best["stage"] if best else None}
    if best:
        per_server_core = best["rps"] / best["server_cores"] if best["server_cores"] else None
        per_machine_core = best["rps"] / cpus
        target = ORIGINAL_REQ_S_PER_VCPU * PER_CORE_FACTOR
        out.update(
            users=best["users"],
            rps=best["rps"],
            p95_ms=best["p95_ms"],
            error_ratio=best["error_ratio"],
            rps_per_server_core=per_server_core,
            rps_per_functions_core=best["rps"] / best["cpu_cores"]["functions"],
            rps_per_machine_core=per_machine_core,
            # All our processes (server, emulators, Redis, generator): #2's "with the generator
            # and emulators sharing our cores", without the other tenants' share of the machine.
            rps_per_ours_core=best["rps"] / best["ours_cores"],
            ratio_per_ours_core=best["rps"] / best["ours_cores"] / ORIGINAL_REQ_S_PER_VCPU,
            ours_cores=best["ours_cores"],
            others_cores=best["cpu_cores"]["others"],
            cpu_ms_per_request={c: best["cpu_cores"][c] * 1000 / best["rps"] for c in COMPONENTS},
            ratio_per_server_core=(per_server_core or 0) / ORIGINAL_REQ_S_PER_VCPU,
            ratio_per_machine_core=per_machine_core / ORIGINAL_REQ_S_PER_VCPU,
            target_per_core=target,
            meets_per_core_target_machine=per_machine_core >= target,
            meets_per_core_target_server=(per_server_core or 0) >= target,
            server_cpu_s_per_1k=best["server_cpu_s_per_1k"],
            functions_cpu_s_per_1k=best["functions_cpu_s_per_1k"],
            price_per_million_usd=price_per_million(best["server_cpu_s_per_1k"])
            + PRICE_PER_MILLION_REQUESTS,
            generator_cores=best["cpu_cores"]["generator"],
        )
    failing = [s for s in stages if not s["meets_slo"]]
    if failing:
        first = min(failing, key=lambda s: s["users"])
        worst = max(first["kinds"].items(), key=lambda kv: kv[1]["p95_ms"] or 0)
        out["first_miss"] = {
            "users": first["users"],
            "p95_ms": first["p95_ms"],
            "error_ratio": first["error_ratio"],
            "slowest_kind": worst[0],
            "slowest_kind_p95_ms": worst[1]["p95_ms"],
            "machine_cores": first["cpu_cores"]["machine"],
        }
    return out


def fmt(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def markdown(r: dict[str, Any]) -> str:
    m, s, cfg = r["machine"], r["summary"], r["config"]
    cpus = r["cpus"]
    lines = [
        "# Mixed scenario (65 % filtered lists / 20 % creates / 15 % account lists), Locust",
        "",
        f"{r['date']}, {cpus} CPUs ({m.get('cpu_model', '?')}), Python {m.get('python')}, "
        f"Locust {r['locust_version']}, commit {m.get('git_commit')}; load average "
        f"{r['loadavg_before']} → {r['loadavg_after']}. Functions {', '.join(FUNCTIONS)} behind "
        f"the gateway (functions-framework defaults), Firestore emulator, Redis, tasks emulator, "
        f"all on this machine with the generator. Per stage: users ramp up, each registers and "
        f"sets up (2 accounts, {cfg['seed_transactions']} seed transactions), {cfg['settle']:g} s "
        f"settle, then a {cfg['window']:g} s measuring window (Locust's statistics reset at its "
        f"start and written as CSV at its end). Run took {r['run_s']:.0f} s.",
        "",
        "| users | req/s | P50 ms | P95 ms | P99 ms | errors | SLO | functions | gateway | "
        "Firestore | Redis | tasks | generator | others | server CPU-s / 1k |",
        "| " + " | ".join(["---"] * 15) + " |",
    ]
    for st in r["stages"]:
        c = st["cpu_cores"]
        lines.append(
            f"| {st['users']} | {st['rps']:.1f} | {fmt(st['p50_ms'])} | {fmt(st['p95_ms'])} | "
            f"{fmt(st['p99_ms'])} | {st['error_ratio'] * 100:.2f} % | "
            f"{'✓' if st['meets_slo'] else '✗'} | "
            + " | ".join(
                f"{c[k] * 100:.0f} %"
                for k in ("functions", "gateway", "firestore", "redis", "tasks", "generator")
            )
            + f" | {c['others'] * 100:.0f} % | {st['server_cpu_s_per_1k']:.2f} |"
        )
    lines += [
        "",
        "CPU columns: % of one core over the window (from /proc; *others* = the machine's busy "
        "time not ours: other tenants). *server* = functions + gateway.",
        "",
        "P95 per request kind (ms):",
        "",
    ]
    kinds = sorted({k for st in r["stages"] for k in st["kinds"]})
    lines += [
        "| users | " + " | ".join(kinds) + " |",
        "| " + " | ".join(["---"] * (len(kinds) + 1)) + " |",
    ]
    for st in r["stages"]:
        lines.append(
            f"| {st['users']} | "
            + " | ".join(
                f"{fmt(st['kinds'].get(k, {}).get('p95_ms'))} "
                f"({st['kinds'].get(k, {}).get('requests', 0)})"
                for k in kinds
            )
            + " |"
        )
    lines += [
        "",
        "(in brackets: requests in the window)",
        "",
        "Setup during each stage's ramp (outside its window): registrations (argon2id password "
        "hash) "
        + ", ".join(
            f"{st['users']} users: {st['register']['requests']} in P50 "
            f"{fmt(st['register'].get('p50_ms'))} / P95 {fmt(st['register'].get('p95_ms'))} ms"
            f" ({st['register'].get('failures', 0)} failed)"
            for st in r["stages"]
        )
        + ".",
        "",
        "## Against the targets",
        "",
    ]
    target = ORIGINAL_REQ_S_PER_VCPU * PER_CORE_FACTOR
    if s.get("best_stage") is None:
        lines.append(f"**No stage met the SLO** (P95 ≤ {P95_SLO_MS:.0f} ms, errors < 0.5 %).")
    else:
        lines += [
            f"- **#3, highest load meeting P95 ≤ {P95_SLO_MS:.0f} ms and < "
            f"{ERROR_SLO * 100:.1f} % errors: {s['users']} users, {s['rps']:.1f} req/s** "
            f"(P95 {fmt(s['p95_ms'])} ms, errors {s['error_ratio'] * 100:.2f} %). The original "
            "held the SLO up to ≈ 540 users on 10 Cloud Run instances of 1 vCPU.",
            f"- **#2, per core** (the original: ≈ {ORIGINAL_REQ_S_PER_VCPU:.0f} req/s per vCPU "
            f"at the SLO; the target: ≥ {target:.0f}): **{fmt(s['rps_per_ours_core'], 1)} req/s "
            f"per core used by all our processes** (server, emulators, Redis, generator: "
            f"{s['ours_cores'] * 100:.0f} % of a core; **{s['ratio_per_ours_core']:.2f}x** the "
            f"original, "
            + (
                "meets 3x"
                if s["rps_per_ours_core"] >= target
                else f"misses 3x by {(1 - s['rps_per_ours_core'] / target) * 100:.0f} %"
            )
            + f"; other tenants used {s['others_cores'] * 100:.0f} % meanwhile); "
            f"{fmt(s['rps_per_machine_core'], 1)} req/s "
            f"per machine core with the generator and emulators sharing our {cpus} cores "
            f"(**{s['ratio_per_machine_core']:.2f}x** the original, "
            f"{'meets' if s['meets_per_core_target_machine'] else 'misses'} 3x"
            + (
                ""
                if s["meets_per_core_target_machine"]
                else f" by {(1 - s['rps_per_machine_core'] / target) * 100:.0f} %"
            )
            + f"); {fmt(s['rps_per_server_core'], 1)} req/s per core our server processes used "
            f"(functions + gateway; **{s['ratio_per_server_core']:.2f}x**), "
            f"{fmt(s['rps_per_functions_core'], 1)} per core of the functions alone.",
            f"- **#9**: {s['server_cpu_s_per_1k']:.2f} server CPU-seconds per 1,000 requests "
            f"({s['functions_cpu_s_per_1k']:.2f} in the functions): about "
            f"${s['price_per_million_usd']:.2f} per million requests on Cloud Run "
            f"(${PRICE_VCPU_SECOND}/vCPU-s + ${PRICE_GIB_SECOND}/GiB-s x {INSTANCE_GIB} GiB for "
            f"that CPU time, + ${PRICE_PER_MILLION_REQUESTS} request fee; Firestore reads extra).",
            "- CPU-ms per request at that stage: "
            + ", ".join(f"{c} {v:.1f}" for c, v in s["cpu_ms_per_request"].items())
            + ".",
            f"- The generator (Locust, one process) used {s['generator_cores'] * 100:.0f} % of a "
            "core at that stage: "
            + (
                "not saturated."
                if s["generator_cores"] < 0.8
                else "**near saturation, the figures may be the generator's limit**."
            ),
        ]
    miss = s.get("first_miss")
    if miss:
        lines.append(
            f"- First stage past the SLO: {miss['users']} users, P95 {fmt(miss['p95_ms'])} ms, "
            f"errors {miss['error_ratio'] * 100:.2f} %; its slowest kind: {miss['slowest_kind']} "
            f"(P95 {fmt(miss['slowest_kind_p95_ms'])} ms); the machine was "
            f"{miss['machine_cores'] * 100:.0f} % busy of {cpus * 100} %."
        )
    lines += ["", r.get("interpretation", ""), ""]
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    stages = r["stages"]
    users = [s["users"] for s in stages]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    ax = axes[0]
    ax.plot(users, [s["rps"] for s in stages], "o-", color="black")
    ax.set_title("requests/s")
    ax = axes[1]
    for key, color in (("p50_ms", "tab:green"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        ax.plot(users, [s[key] or 0 for s in stages], "o-", color=color, label=key[:3].upper())
    ax.axhline(P95_SLO_MS, color="red", linestyle=":", linewidth=0.8)
    ax.text(users[0], P95_SLO_MS, " SLO 300 ms", color="red", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_title("latency (ms)")
    ax.legend(fontsize=8)
    ax = axes[2]
    bottom = [0.0] * len(stages)
    for comp in (*COMPONENTS, "others"):
        vals = [s["cpu_cores"][comp] * 100 for s in stages]
        ax.bar([str(u) for u in users], vals, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.axhline(r["cpus"] * 100, color="grey", linestyle=":", linewidth=0.8)
    ax.set_title("CPU (% of a core)")
    ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("virtual users")
        ax.grid(True, alpha=0.3)
    fig.suptitle(
        f"Mixed scenario, {r['date']} · {r['cpus']} cores, commit {r['machine']['git_commit']}",
        fontsize=11,
    )
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True


def interpretation(r: dict[str, Any]) -> str:
    s = r["summary"]
    parts = [
        "Reading the numbers: everything shares this machine's cores — the functions, the "
        "gateway (in production the load balancer, not our cores), the Firestore emulator "
        "(production Firestore is not on our cores either), Redis, Locust and other tenants "
        "(*others*). Per core of all our processes is the figure independent of the neighbours; "
        "per machine core is the conservative one (it charges us the neighbours' share too); "
        "per server core is what Cloud Run instances of our functions would need."
    ]
    if s.get("best_stage") is not None:
        per_request = s["cpu_ms_per_request"]
        total = sum(per_request.values())
        budget = 1000 / (ORIGINAL_REQ_S_PER_VCPU * PER_CORE_FACTOR)
        parts.append(
            f"Where the time goes: at the best stage a request costs {total:.1f} CPU-ms over "
            f"all our processes (functions {per_request['functions']:.1f}, Firestore emulator "
            f"{per_request['firestore']:.1f}, gateway {per_request['gateway']:.1f}, generator "
            f"{per_request['generator']:.1f}); 3x the original per core allows {budget:.1f}. "
            "Past the best stage P95 grows with the machine's CPU saturation (see the busy "
            "columns), not with errors; the kinds' P95 table shows which requests queue first."
        )
    return " ".join(parts)


# --- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="valorize-bench-mixed-"))
    config = StackConfig(
        storage=False,
        smtp=False,
        functions=FUNCTIONS,
        log_dir=workdir / "logs",
        extra_env={"VALORIZE_WRITE_RATE": "1000000/hour"},
    )
    cpus = len(os.sched_getaffinity(0))
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "cpus": cpus,
        # Not `import locust`: it monkey-patches this process with gevent.
        "locust_version": importlib.metadata.version("locust"),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "config": {
            "stages": args.stages,
            "settle": args.settle,
            "window": args.window,
            "setup_timeout": args.setup_timeout,
            "seed_transactions": args.seed_transactions,
            "mix_percent": MIX,
            "functions": FUNCTIONS,
            "write_rate": config.extra_env["VALORIZE_WRITE_RATE"],
        },
    }
    with Stack(config) as stack:
        base = str(stack.urls.base_url)
        print(f"mixed: stack up in {stack.startup_seconds:.0f} s at {base}", flush=True)
        sampler = Sampler(classify(stack.pids()))
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        try:
            code, took = run_locust(args, base, workdir, sampler)
        finally:
            sampler.stop.set()
            thread.join()
    report["run_s"] = took
    report["locust_exit"] = code
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    jsonl = workdir / "mixed_stages.jsonl"
    if not jsonl.exists():
        raise BenchError(f"Locust wrote no stage (exit {code}); see {workdir}/locust.log")
    stages = []
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        figures = stage_figures(row, read_csv(workdir / row["csv"]))
        figures["cpu_cores"] = sampler.window(row["open"], row["close"])
        figures["register"] = register_figures(workdir / f"mixed_stage{row['stage']}_ramp.csv")
        stages.append(figures)
        print(
            f"  {figures['users']:>4} users: {figures['rps']:6.1f} req/s, P95 "
            f"{fmt(figures['p95_ms'])} ms, errors {figures['error_ratio'] * 100:.2f} %",
            flush=True,
        )
    report["stages"] = stages
    report["summary"] = summarise(stages, cpus)
    report["interpretation"] = interpretation(report)
    report["cpu_samples"] = sampler.samples
    csv_dir = args.out / "mixed_csv"
    shutil.rmtree(csv_dir, ignore_errors=True)
    csv_dir.mkdir(parents=True)
    for f in workdir.glob("mixed*.csv"):
        shutil.copy(f, csv_dir / f.name)
    report["workdir"] = str(workdir)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--stages", type=int, nargs="+", default=list(DEFAULT_STAGES))
    parser.add_argument("--settle", type=float, default=5.0, help="s after setup, unmeasured")
    parser.add_argument("--window", type=float, default=30.0, help="measured s per stage")
    parser.add_argument("--setup-timeout", type=float, default=90.0)
    parser.add_argument("--seed-transactions", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    parser.add_argument("--from-json", type=Path, help="only re-render this run's report")
    args = parser.parse_args(argv)
    if any(b <= a for a, b in itertools.pairwise(args.stages)):
        parser.error("--stages must increase")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        # Re-render a finished run's report (its JSON holds every figure the report uses).
        report = json.loads(args.from_json.read_text())
        report["summary"] = summarise(report["stages"], report["cpus"])
        report["interpretation"] = interpretation(report)
    else:
        report = run(args)
    write_atomic(args.out / "mixed.json", json.dumps(report, indent=1) + "\n")
    text = markdown(report)
    if not plot(report, args.out / "mixed.png"):
        text += "\n(matplotlib is not installed: no plot.)\n"
    write_atomic(args.out / "mixed.md", text)
    print(text)
    return 0 if report["summary"].get("best_stage") is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
