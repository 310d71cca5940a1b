"""Cold start, import time and memory of every function beside a bare functions-framework function.

../shared/spec/TARGETS.md #7 (each function's cold start <= 2x a bare function's, side by side, with
its import time reported) and #8 (every instance under 256 MiB RSS). One run measures, for every
`functions/<name>/main.py` and for `load/bare/main.py`:

1. import time: `python -X importtime -c "import main"` in a fresh process (the cumulative time of
   the `main` module), plus the packages that cost the most;
2. cold start: `functions-framework --target T --source main.py` as a fresh process, polled every
   10 ms on its health path, timed from just before the process is spawned to the first 200;
3. memory: VmRSS (and PSS) summed over the server's process tree right after that first 200.

Rounds are interleaved (each round visits every function, in a rotated order) so that noise on
a shared machine hits the functions and the baseline alike. A first warm-up round (OS page
cache, bytecode caches) is discarded.

    python load/coldstart.py [--repeat N] [--warmup W] [--out load/results] [--only NAME ...]

Writes `<out>/coldstart.json` (machine-readable) and `<out>/coldstart.md` (human report).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BARE_NAME = "bare"
RATIO_TARGET = 2.0
RSS_TARGET_MIB = 256.0
POLL_S = 0.010
TOP_N = 5
FUNCTION_ENV = {
    "GOOGLE_CLOUD_PROJECT": "valorize-local",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1",  # unused by healthz: nothing may connect at import
    "REDIS_URL": "redis://127.0.0.1:1/0",
}
VERSIONED = ["functions-framework", "gunicorn", "flask", "werkzeug", "pydantic",
             "google-cloud-firestore", "google-api-core", "grpcio", "protobuf", "redis"]


class BenchError(RuntimeError):
    """A measurement that could not be taken; the message says why."""


@dataclass(frozen=True)
class Function:
    name: str
    target: str
    source: Path
    health_path: str

    @property
    def is_bare(self) -> bool:
        return self.name == BARE_NAME


@dataclass
class ImportSample:
    main_us: int
    wall_ms: float
    cpu_ms: float  # user + system CPU of the whole `python -c "import main"` process
    module_self_us: dict[str, int]  # every module `main` imported, and `main` itself
    direct_cum_us: dict[str, int]


@dataclass
class MemorySample:
    """The server's process tree right after its first 200."""

    cpu_ms: float  # user + system CPU spent by the tree so far: the cold start's CPU cost
    rss_sum_mib: float
    pss_sum_mib: float | None
    processes: list[dict[str, Any]]


@dataclass
class Results:
    imports: list[ImportSample] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)
    memory: list[MemorySample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- discovery ---------------------------------------------------------------------------------


def discover(only: list[str] | None) -> list[Function]:
    found = [Function(BARE_NAME, "hello", ROOT / "load" / "bare" / "main.py", "/")]
    for main in sorted((ROOT / "functions").glob("*/main.py")):
        name = main.parent.name
        found.append(Function(name, name, main, f"/api/{name}/healthz"))
    if only:
        unknown = set(only) - {f.name for f in found}
        if unknown:
            raise BenchError(f"unknown function(s): {', '.join(sorted(unknown))}; "
                             f"found: {', '.join(f.name for f in found)}")
        found = [f for f in found if f.is_bare or f.name in only]
    return found


def functions_framework_bin() -> str:
    candidate = Path(sys.executable).parent / "functions-framework"
    if candidate.exists():
        return str(candidate)
    which = shutil.which("functions-framework")
    if which:
        return which
    raise BenchError(f"functions-framework not found next to {sys.executable} nor on PATH; "
                     "run this with the project's virtualenv python")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(FUNCTION_ENV)
    env.pop("PYTHONSTARTUP", None)
    return env


# --- import time -------------------------------------------------------------------------------

IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")


@dataclass(frozen=True)
class ImportRow:
    name: str
    self_us: int
    cum_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportRow]:
    rows = []
    for line in stderr.splitlines():
        m = IMPORTTIME_LINE.match(line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            rows.append(ImportRow(m.group(4), int(m.group(1)), int(m.group(2)), depth))
    return rows


def package_of(module: str) -> str:
    """Group modules by distribution-ish name: `google.cloud.firestore_v1`, `google.protobuf`,
    `pydantic_core`, `flask`..."""
    parts = module.split(".")
    if parts[0] == "google" and len(parts) > 1:
        return ".".join(parts[:3] if parts[1] == "cloud" and len(parts) > 2 else parts[:2])
    return parts[0]


def subtree_of(rows: list[ImportRow], top: str) -> tuple[ImportRow, list[ImportRow]]:
    """The top-level row named `top` and every row it imported (importtime prints children
    before their parent, so the subtree is the run of deeper rows just above it)."""
    for i, row in enumerate(rows):
        if row.depth == 0 and row.name == top:
            start = i
            while start > 0 and rows[start - 1].depth > 0:
                start -= 1
            return row, rows[start:i]
    raise BenchError(f"no top-level '{top}' in the -X importtime output")


def measure_import(fn: Function, env: dict[str, str], timeout: float) -> ImportSample:
    module = fn.source.stem
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                              cwd=fn.source.parent, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"import of {fn.source} took longer than {timeout:.0f} s") from e
    wall_ms = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # only this child was reaped since
    cpu_ms = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    if proc.returncode != 0:
        noise = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
        raise BenchError(f"import of {fn.source} failed (exit {proc.returncode}):\n"
                         + "\n".join(noise[-20:]))
    top_row, subtree = subtree_of(parse_importtime(proc.stderr), module)
    modules = {row.name: row.self_us for row in subtree}
    modules["main"] = top_row.self_us  # the function module's own body, whatever its file name
    direct = {row.name: row.cum_us for row in subtree if row.depth == 1}
    return ImportSample(top_row.cum_us, wall_ms, cpu_ms, modules, direct)


# --- cold start --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe(port: int, path: str, timeout: float) -> int | None:
    """The HTTP status of GET path, or None while nothing accepts connections."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (from /proc)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            ppid = parent_of(int(entry.name))
            if ppid is not None:
                parents[ppid].append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(parents.get(pid, []))
    return pids


def proc_kib(pid: int, filename: str, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/{filename}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_ms(pid: int) -> float | None:
    """utime + stime of one process, from /proc/<pid>/stat (clock-tick resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def tree_snapshot(root: int) -> MemorySample:
    processes: list[dict[str, Any]] = []
    cpu = 0.0
    for pid in tree_pids(root):
        rss = proc_kib(pid, "status", "VmRSS")
        if rss is None:
            continue
        cpu += proc_cpu_ms(pid) or 0.0
        pss = proc_kib(pid, "smaps_rollup", "Pss")
        processes.append({"pid": pid, "role": "master" if pid == root else "worker",
                          "rss_mib": round(rss / 1024, 1),
                          "pss_mib": None if pss is None else round(pss / 1024, 1)})
    if not processes:
        raise BenchError(f"process {root} vanished before its memory could be read")
    pss_values = [p["pss_mib"] for p in processes]
    pss_sum = None if None in pss_values else round(sum(pss_values), 1)
    return MemorySample(round(cpu, 1), round(sum(p["rss_mib"] for p in processes), 1),
                        pss_sum, processes)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group: SIGTERM, then SIGKILL for any straggler."""
    members = [pid for pid in tree_pids(proc.pid) if pid != proc.pid]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    deadline = time.monotonic() + 3
    for pid in members:  # a worker that outlived its master: same group, still ours
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.02)
        try:
            if os.getpgid(pid) == proc.pid:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tail(log: IO[bytes], lines: int = 25) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


def measure_cold_start(fn: Function, ff: str, env: dict[str, str],
                       timeout: float) -> tuple[float, MemorySample]:
    port = free_port()
    cmd = [ff, "--target", fn.target, "--source", str(fn.source),
           "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=fn.source.parent, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = started + timeout
            last = "nothing listening"
            while True:
                status = probe(port, fn.health_path, max(0.05, deadline - time.perf_counter()))
                if status == 200:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    break
                if status is not None:
                    last = f"HTTP {status}"
                if proc.poll() is not None:
                    raise BenchError(f"{fn.name}: functions-framework exited with "
                                     f"{proc.returncode} before a 200 on {fn.health_path} "
                                     f"(last: {last}):\n{tail(log)}")
                if time.perf_counter() > deadline:
                    raise BenchError(f"{fn.name}: no 200 on {fn.health_path} within "
                                     f"{timeout:.0f} s (last: {last}):\n{tail(log)}")
                time.sleep(POLL_S)
            return elapsed_ms, tree_snapshot(proc.pid)
        finally:
            stop(proc)


# --- statistics and reports --------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def r1(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


@dataclass(frozen=True)
class Baseline:
    cold_median_ms: float | None
    cold_cpu_median_ms: float | None
    import_median_ms: float | None
    modules: frozenset[str]

    @classmethod
    def of(cls, res: Results | None) -> Baseline:
        if res is None:
            return cls(None, None, None, frozenset())
        return cls(statistics.median(res.cold_ms) if res.cold_ms else None,
                   statistics.median(m.cpu_ms for m in res.memory) if res.memory else None,
                   statistics.median(s.main_us / 1000 for s in res.imports)
                   if res.imports else None,
                   frozenset(m for s in res.imports for m in s.module_self_us if m != "main"))


def package_medians(samples: list[ImportSample], keep: set[str] | None = None) -> dict[str, float]:
    """Median over samples of each package's summed own import time (ms), optionally only over
    the modules in `keep`."""
    per_sample = []
    for sample in samples:
        totals: dict[str, int] = defaultdict(int)
        for module, us in sample.module_self_us.items():
            if keep is None or module in keep:
                totals[package_of(module)] += us
        per_sample.append(totals)
    names = {p for totals in per_sample for p in totals}
    return {p: statistics.median(t.get(p, 0) / 1000 for t in per_sample) for p in names}


def top(ms_by_name: dict[str, float], key: str) -> list[dict[str, Any]]:
    ranked = sorted(ms_by_name.items(), key=lambda kv: -kv[1])[:TOP_N]
    return [{key: name, "ms": r1(ms)} for name, ms in ranked]


def summarize(fn: Function, res: Results, base: Baseline) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": fn.target,
        "source": str(fn.source.relative_to(ROOT)),
        "health_path": fn.health_path,
        "errors": res.errors,
    }
    if res.imports:
        import_ms = [s.main_us / 1000 for s in res.imports]
        modules = {m for s in res.imports for m in s.module_self_us}
        added = {m for m in modules if m not in base.modules}
        direct = {m for s in res.imports for m in s.direct_cum_us}
        direct_ms = {m: statistics.median(s.direct_cum_us.get(m, 0) / 1000 for s in res.imports)
                     for m in direct}
        median = statistics.median(import_ms)
        out["import"] = {
            "median_ms": r1(median),
            "p90_ms": r1(percentile(import_ms, 0.9)),
            "min_ms": r1(min(import_ms)),
            "samples_ms": [r1(x) for x in import_ms],
            "process_cpu_median_ms": r1(statistics.median(s.cpu_ms for s in res.imports)),
            "extra_over_bare_ms": r1(None if base.import_median_ms is None
                                     else median - base.import_median_ms),
            "process_wall_median_ms": r1(statistics.median(s.wall_ms for s in res.imports)),
            "modules": len(modules),
            "modules_not_in_bare": 0 if fn.is_bare else len(added),
            "top_packages_self_ms": top(package_medians(res.imports), "package"),
            "top_added_packages_self_ms": (
                [] if fn.is_bare else top(package_medians(res.imports, added), "package")),
            "top_direct_imports_cumulative_ms": top(direct_ms, "module"),
        }
    if res.cold_ms:
        median = statistics.median(res.cold_ms)
        ratio = None if not base.cold_median_ms else median / base.cold_median_ms
        out["cold_start"] = {
            "median_ms": r1(median),
            "p90_ms": r1(percentile(res.cold_ms, 0.9)),
            "min_ms": r1(min(res.cold_ms)),
            "samples_ms": [r1(x) for x in res.cold_ms],
            "ratio_to_bare": None if ratio is None else round(ratio, 2),
            "meets_target_7": None if ratio is None or fn.is_bare else ratio <= RATIO_TARGET,
        }
    if res.memory:  # CPU burnt by the server tree up to its first 200: robust to a busy machine
        cpu = statistics.median(m.cpu_ms for m in res.memory)
        out["cold_start"] |= {
            "cpu_median_ms": r1(cpu),
            "cpu_samples_ms": [r1(m.cpu_ms) for m in res.memory],
            "cpu_ratio_to_bare": (round(cpu / base.cold_cpu_median_ms, 2)
                                  if base.cold_cpu_median_ms else None),
        }
    if res.memory:
        rss = [m.rss_sum_mib for m in res.memory]
        pss = [m.pss_sum_mib for m in res.memory if m.pss_sum_mib is not None]
        out["memory"] = {
            "rss_tree_median_mib": r1(statistics.median(rss)),
            "rss_tree_max_mib": r1(max(rss)),
            "pss_tree_median_mib": r1(statistics.median(pss)) if pss else None,
            "processes_last_run": res.memory[-1].processes,
            "meets_target_8": max(rss) < RSS_TARGET_MIB,
        }
    return out


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10,
                                check=False).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit,
    }


def fmt(x: Any, suffix: str = "") -> str:
    return "-" if x is None else f"{x}{suffix}"


def yes_no(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def markdown(report: dict[str, Any]) -> str:
    fns: dict[str, dict[str, Any]] = report["functions"]
    m = report["machine"]
    lines = [
        "# Cold start, import time and memory (../shared/spec/TARGETS.md #7, #8)",
        "",
        f"{report['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · Python {m['python']} · "
        f"functions-framework {m['versions'].get('functions-framework')} · "
        f"gunicorn {m['versions'].get('gunicorn')} · commit {m['git_commit']} · "
        f"{report['config']['repeat']} interleaved rounds (+{report['config']['warmup']} "
        f"warm-up) · load average {report['loadavg_before']} → {report['loadavg_after']}",
        "",
        "| function | import ms median (min) | import over bare | cold start ms median / p90 "
        "| x bare | cold start CPU ms | CPU x bare | RSS MiB (tree, max) | PSS MiB "
        "| #7 <= 2x | #8 < 256 MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: |",
    ]
    for name, f in fns.items():
        imp, cold, mem = f.get("import", {}), f.get("cold_start", {}), f.get("memory", {})
        ok7 = cold.get("meets_target_7")
        ok8 = mem.get("meets_target_8")
        lines.append(
            f"| {name} | {fmt(imp.get('median_ms'))} ({fmt(imp.get('min_ms'))}) "
            f"| {fmt(imp.get('extra_over_bare_ms'))} "
            f"| {fmt(cold.get('median_ms'))} / {fmt(cold.get('p90_ms'))} "
            f"| {fmt(cold.get('ratio_to_bare'))} | {fmt(cold.get('cpu_median_ms'))} "
            f"| {fmt(cold.get('cpu_ratio_to_bare'))} | {fmt(mem.get('rss_tree_max_mib'))} "
            f"| {fmt(mem.get('pss_tree_median_mib'))} "
            f"| {'baseline' if name == BARE_NAME else yes_no(ok7)} | {yes_no(ok8)} |")
    lines += ["", "What each function imports that the bare one does not (own import time of "
              "those modules by package, median ms; `main` is the function module's body):", ""]
    for name, f in fns.items():
        imp = f.get("import", {})
        if name != BARE_NAME and imp:
            lines.append(f"- **{name}** ({imp['modules_not_in_bare']} modules): "
                         + ", ".join(f"{t['package']} {t['ms']}"
                                     for t in imp["top_added_packages_self_ms"]))
    lines += ["", "Heaviest packages overall (same measure, shared ones included):", ""]
    for name, f in fns.items():
        ranked = f.get("import", {}).get("top_packages_self_ms", [])
        lines.append(f"- **{name}**: " + ", ".join(f"{t['package']} {t['ms']}" for t in ranked))
    errors = {n: f["errors"] for n, f in fns.items() if f["errors"]}
    if errors:
        lines += ["", "## Errors", ""]
        for name, errs in errors.items():
            lines += [f"- **{name}** ({len(errs)}):", "", "```", errs[0], "```", ""]
    lines += ["", "## Interpretation", "", interpretation(report), "",
              "Method: import time is the cumulative `-X importtime` figure of the `main` module "
              "in a fresh `python -c \"import main\"` (importtime's own overhead is within noise "
              "here); cold start is spawn of `functions-framework` (gunicorn, 1 worker) to the "
              "first 200 on the health path, polled every 10 ms; cold start CPU is the user + "
              "system time of the server's processes at that first 200 (/proc, 10 ms ticks); "
              "RSS sums VmRSS over the master "
              "and its worker right after that 200 — the worker is forked after the app is "
              "imported, so shared pages count twice and PSS is the fairer total. "
              "Raw samples in `coldstart.json`.", ""]
    return "\n".join(lines)


def interpretation(report: dict[str, Any]) -> str:
    fns = report["functions"]
    bare = fns.get(BARE_NAME, {})
    measured = {n: f for n, f in fns.items()
                if n != BARE_NAME and f.get("cold_start") and f.get("import")}
    if not measured or not bare.get("cold_start"):
        return "Not enough successful measurements to interpret (see errors)."
    worst = max(measured, key=lambda n: measured[n]["cold_start"]["ratio_to_bare"])
    w = measured[worst]
    bare_cold = bare["cold_start"]["median_ms"]
    bare_imp = bare["import"]["median_ms"] if bare.get("import") else None
    extra_cold = w["cold_start"]["median_ms"] - bare_cold
    extra_imp = w["import"]["extra_over_bare_ms"]
    totals: dict[str, float] = defaultdict(float)
    for f in measured.values():
        for t in f["import"]["top_added_packages_self_ms"]:
            totals[t["package"]] += t["ms"] / len(measured)
    heavy = ", ".join(f"{p} (~{ms:.0f} ms)"
                      for p, ms in sorted(totals.items(), key=lambda kv: -kv[1])[:3])
    failing7 = [n for n, f in measured.items() if f["cold_start"]["meets_target_7"] is False]
    failing8 = [n for n, f in measured.items()
                if f.get("memory", {}).get("meets_target_8") is False]
    max_rss = max(f["memory"]["rss_tree_max_mib"] for f in measured.values() if f.get("memory"))
    verdict7 = ("every function meets #7" if not failing7
                else f"#7 is missed by {', '.join(failing7)}")
    verdict8 = ("all stay under 256 MiB (#8)" if not failing8
                else f"#8 is missed by {', '.join(failing8)}")
    share_txt = (f" (its module imports take {extra_imp:.0f} ms longer than bare's)"
                 if extra_imp is not None else "")
    cpu_share = [f["cold_start"]["cpu_median_ms"] / f["cold_start"]["median_ms"]
                 for f in [bare, *measured.values()] if f["cold_start"].get("cpu_median_ms")]
    cpu_txt = (f" Cold start is CPU-bound: the server's CPU time at its first 200 is "
               f"{min(cpu_share):.0%}-{max(cpu_share):.0%} of the wall time, so only doing less "
               f"at import makes it faster (and a busy or throttled CPU slows it in proportion)."
               if cpu_share else "")
    load = report["loadavg_before"][0]
    cpus = report["machine"]["cpus_usable"] or 1
    noise_txt = (f" The machine was busy (load average {load} on {cpus} CPUs), so single "
                 f"samples scatter widely; trust medians, minima and the CPU column over p90."
                 if load > 0.5 * cpus else "")
    return (f"The bare function answers its first request {bare_cold:.0f} ms after spawn "
            f"(of which ~{fmt(bare_imp)} ms is importing functions-framework and Flask). "
            f"The slowest function, {worst}, needs {w['cold_start']['median_ms']:.0f} ms "
            f"({w['cold_start']['ratio_to_bare']}x bare), {extra_cold:.0f} ms more{share_txt}, "
            f"so {verdict7}.{cpu_txt}{noise_txt} "
            f"What the functions import beyond the bare one is dominated by "
            f"{heavy} (mean over functions). Memory right after the "
            f"first request peaks at {max_rss:.0f} MiB RSS for the master+worker tree; "
            f"{verdict8}. This is a start-to-first-request figure on a warm page cache; under "
            f"load memory is target #8's business and is measured by the load scenarios.")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    fns = discover(args.only)
    ff = functions_framework_bin()
    env = child_env()
    results: dict[str, Results] = {f.name: Results() for f in fns}
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    total_rounds = args.warmup + args.repeat
    print(f"coldstart: {len(fns)} functions ({', '.join(f.name for f in fns)}), "
          f"{args.repeat} rounds + {args.warmup} warm-up", flush=True)
    for rnd in range(total_rounds):
        warm = rnd < args.warmup
        shift = rnd % len(fns)
        order = fns[shift:] + fns[:shift]
        for fn in order:
            res = results[fn.name]
            try:
                imp = measure_import(fn, env, args.timeout)
                if not warm:
                    res.imports.append(imp)
                imp_label = f"import {imp.main_us / 1000:5.0f} ms"
            except BenchError as e:
                res.errors.append(f"import: {e}")
                imp_label = "import FAILED: " + str(e).splitlines()[0]
            try:
                cold_ms, mem = measure_cold_start(fn, ff, env, args.timeout)
                if not warm:
                    res.cold_ms.append(cold_ms)
                    res.memory.append(mem)
                label = (f"cold {cold_ms:5.0f} ms ({mem.cpu_ms:4.0f} ms CPU), "
                         f"{mem.rss_sum_mib:3.0f} MiB")
            except BenchError as e:
                res.errors.append(f"cold start: {e}")
                label = "FAILED: " + str(e).splitlines()[0]
            tag = "warm-up" if warm else f"round {rnd - args.warmup + 1}/{args.repeat}"
            print(f"  {tag:>12} {fn.name:<14} {imp_label}, {label}", flush=True)

    base = Baseline.of(results.get(BARE_NAME))
    summaries = {f.name: summarize(f, results[f.name], base) for f in fns}
    report: dict[str, Any] = {
        "benchmark": "coldstart",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "config": {"repeat": args.repeat, "warmup": args.warmup, "poll_ms": POLL_S * 1000,
                   "timeout_s": args.timeout, "env": FUNCTION_ENV,
                   "server": "functions-framework (gunicorn, defaults: 1 worker)"},
        "targets": {"cold_start_ratio_max": RATIO_TARGET, "rss_mib_max": RSS_TARGET_MIB},
        "baseline": BARE_NAME,
        "functions": summaries,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "coldstart.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md = markdown(report)
    write_atomic(out / "coldstart.md", md)
    print(md)
    print(f"wrote {out / 'coldstart.json'} and {out / 'coldstart.md'}")
    if base.cold_median_ms is None:
        print("error: the bare baseline never started; no ratios", file=sys.stderr)
        return 2
    if any(r.errors for r in results.values()):
        print("error: some measurements failed (see 'errors' in the report)", file=sys.stderr)
        return 1
    if args.check:
        missed = [n for n, f in summaries.items()
                  if f.get("cold_start", {}).get("meets_target_7") is False
                  or f.get("memory", {}).get("meets_target_8") is False]
        if missed:
            print(f"targets #7/#8 missed by: {', '.join(missed)}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds (default 1)")
    parser.add_argument("--out", default=str(ROOT / "load" / "results"),
                        help="output directory (default load/results)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="measure only these functions (the bare baseline always runs)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds allowed per import or per start (default 60)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a function misses target #7 or #8")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be >= 1 and --warmup >= 0")

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally that stops servers

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
