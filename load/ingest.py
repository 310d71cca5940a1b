"""Ingest benchmark (TARGETS.md #4): a 50,000-line statement parsed, classified and staged with
live progress, beside a BulkWriter writing the same number of documents to the same Firestore
emulator, in one run; the worker's memory while it does so; and the same statement committed,
beside staging and a BulkWriter writing as many documents as the commit does (issue 14).

What runs: a private Firestore emulator and Storage emulator (devstack, free ports; no
functions, no Cloud Tasks: the tasks emulator delivers one task at a time and is no measure of
throughput). The statement is generated in memory (load.samples) and
uploaded through `ImportService.upload` into the Storage emulator; then:

- `parse`: the parser alone over the same bytes (lines/s, best of 3; tracemalloc peak);
- `stage`: the worker's code, called directly: `ImportService.process` from "uploaded" to
  "ready" — two streaming passes over the object in Storage, account resolution, the
  classification window query, every row staged in batched writes (4 batches in flight),
  progress events and the final transition. Rows/s = lines / wall time of the whole call;
- `bulkwriter`: google-cloud-firestore's BulkWriter (its rate limiter lifted, so it is the
  client's best) writing the same number of documents of the same shape (the staged rows'
  own documents, built before the clock starts) to the same emulator: the storage floor;
- memory: the growth of this process's RSS while staging (sampled every 20 ms), and the
  tracemalloc peak of a staging run at N lines and at N/2 lines: a flat profile has about the
  same peak for both.

- `commit`: the commit task's code, called directly, from "ready" to "committed" (staged
  beforehand, untimed): every line's transaction created with its row marked, in batches of
  250 rows several in flight, balances and read models settled once per chunk. Rows/s =
  lines / wall time; it writes two documents a row (staging one), so it is also reported in
  documents/s beside
- `commit_bulkwriter`: the BulkWriter writing as many documents of the commit's shapes (each
  line's transaction document and its row document).

Also `writes_only`: the worker's row writer alone over the same rows staged beforehand (its
own floor). Rounds alternate the order of the three so the noise of a shared machine hits all
alike; the ratios use the medians. TARGETS.md #4 wants stage >= 50% of bulkwriter and flat
memory.

    python load/ingest.py [--lines 50000] [--format ofx|csv] [--rounds 2] [--writers 4]
                          [--out load/results]

Writes <out>/ingest.json and <out>/ingest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared" / "src"))

import psutil  # noqa: E402

from devstack.stack import Stack, StackConfig  # noqa: E402

TARGET_RATIO = 0.5


class _Quiet:
    """Task queue and notifier that drop everything (the worker is called directly)."""

    def enqueue(self, *args: Any, **kwargs: Any) -> None:
        pass

    def notify(self, *args: Any) -> None:
        pass


class _Progress:
    """A realtime publisher that records when each import event was sent."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, Mapping[str, object]]] = []

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int:
        self.events.append((time.perf_counter(), event, dict(data)))
        return len(self.events)


class _RssSampler(threading.Thread):
    def __init__(self, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.every = every
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return self.peak - self.base


def _machine() -> dict[str, Any]:
    versions = {}
    for dist in ("google-cloud-firestore", "google-cloud-storage", "grpcio", "protobuf"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        None,
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit or None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


class Bench:
    def __init__(self, env: Mapping[str, str], writers: int) -> None:
        from valorize import bootstrap
        from valorize.adapters.firestore.imports import FirestoreImports
        from valorize.config import Settings

        self.base = bootstrap.build(Settings.from_env(env))
        self.db = self.base.firestore
        self.repo = FirestoreImports(self.db, writers=writers)
        self.clock = self.base.clock
        self.ids = self.base.ids

    def user(self) -> str:
        from valorize.domain.model import ApiToken, User

        uid = self.ids.new_id()
        now = self.clock.now()
        user = User(uid, f"{uid}@bench.local", "Bench", "BRL", "pt-BR", now)
        self.base.user_store.create_user(user, "x", [], ApiToken("t" + uid, uid, "bench", now), "x")
        return uid

    def service(self, progress: _Progress) -> Any:
        """The import service on the emulators, reporting progress to `progress` only."""
        from valorize import bootstrap
        from valorize.adapters.cache import NoCache
        from valorize.service.ports import NullBus

        quiet = _Quiet()
        return bootstrap.build(
            self.base.settings,
            firestore=self.db,
            import_store=self.repo,
            statement_files=self.base.statement_files,
            task_queue=quiet,
            notifier=quiet,
            realtime=progress,
            bus=NullBus(),
            query_cache=NoCache(),
        ).imports

    def upload(self, data: bytes, name: str) -> tuple[Any, _Progress, str, Any]:
        """A new user uploads `data`: (the import service, its progress, the user, the
        import)."""
        from valorize.service.imports import Upload

        progress = _Progress()
        service = self.service(progress)
        uid = self.user()
        with service.receive(uid, None) as intake:
            intake.write(data)
            record, _ = service.upload(uid, Upload(name), intake)
        return service, progress, uid, record

    def stage(self, data: bytes, name: str, *, traced: bool = False) -> dict[str, Any]:
        """Upload, then time the worker from uploaded to ready."""
        service, progress, uid, record = self.upload(data, name)
        gc.collect()
        sampler = _RssSampler()
        sampler.start()
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        ready = service.process(uid, record.id)
        seconds = time.perf_counter() - started
        peak_traced = None
        if traced:
            _, peak_traced = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        rss_growth = sampler.stop()
        assert ready is not None and ready.status.value == "ready", ready
        lines = ready.total
        stamps = [t for t, e, _ in progress.events if e == "import.progress"]
        ends = [*stamps, started + seconds]
        gaps = [b - a for a, b in zip([started, *stamps], ends, strict=True)]
        return {
            "lines": lines,
            "seconds": round(seconds, 3),
            "rows_per_s": round(lines / seconds, 1),
            "counts": ready.counts.as_dict(),
            "progress_events": len(stamps),
            "max_seconds_without_progress": round(max(gaps), 3) if gaps else None,
            "rss_growth_bytes": rss_growth,
            "peak_traced_bytes": peak_traced,
            "user_id": uid,
            "import_id": record.id,
        }

    def commit(self, data: bytes, name: str) -> dict[str, Any]:
        """Upload and stage (untimed), then time the commit from ready to committed: the
        task's code called directly (`commit` then `run_commit`, as the Cloud Task would)."""
        service, progress, uid, record = self.upload(data, name)
        ready = service.process(uid, record.id)
        assert ready is not None and ready.status.value == "ready", ready
        gc.collect()
        started = time.perf_counter()
        record, queued = service.commit(uid, record.id)
        if queued:
            record = service.run_commit(uid, record.id)
        seconds = time.perf_counter() - started
        assert record.status.value == "committed", record
        rows = record.committed
        return {
            "rows": rows,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds, 1),
            # Each row: its transaction and its row's mark (plus one settling batch a chunk).
            "docs_per_s": round(2 * rows / seconds, 1),
            "progress_events": sum(1 for _, e, _ in progress.events if e == "import.progress"),
        }

    def commit_documents(self, data: bytes) -> list[tuple[str, dict[str, Any]]]:
        """As many documents as a commit of `data` writes, of the same shapes: each line's
        transaction and its row."""
        import io

        from valorize.adapters.firestore.documents import txn_doc
        from valorize.adapters.firestore.import_documents import row_doc
        from valorize.domain.imports import Classification, Verdict, stage, transaction_id
        from valorize.domain.model import Origin, Transaction
        from valorize.domain.statements import StatementLine, parse_statement

        new = Verdict(Classification.NEW)
        now = self.clock.now()
        docs: list[tuple[str, dict[str, Any]]] = []
        for e in parse_statement(io.BytesIO(data)):
            if not isinstance(e, StatementLine):
                continue
            row = stage(e, "bench-account", new)
            txn = Transaction(
                id=transaction_id("bench", row.id),
                account_id="bench-account",
                amount=e.amount,
                currency=e.currency,
                date=e.date,
                description=e.description[:255] or "(no description)",
                created_at=now,
                updated_at=now,
                origin=Origin.IMPORT,
                fitid=e.fitid,
                import_id="bench",
            )
            docs.append((txn.id, {**txn_doc(txn), "statement_description": e.description}))
            docs.append((row.id, row_doc(row)))
        return docs

    def documents(self, data: bytes) -> list[tuple[str, dict[str, Any]]]:
        """The staged rows' documents for `data`, as the worker writes them."""
        import io

        from valorize.adapters.firestore.import_documents import row_doc
        from valorize.domain.imports import Classification, Verdict, stage
        from valorize.domain.statements import StatementLine, parse_statement

        new = Verdict(Classification.NEW)
        return [
            ((row := stage(e, "bench-account", new)).id, row_doc(row))
            for e in parse_statement(io.BytesIO(data))
            if isinstance(e, StatementLine)
        ]

    def staged_rows(self, data: bytes) -> list[Any]:
        import io

        from valorize.domain.imports import Classification, Verdict, stage
        from valorize.domain.statements import StatementLine, parse_statement

        new = Verdict(Classification.NEW)
        return [
            stage(e, "bench-account", new)
            for e in parse_statement(io.BytesIO(data))
            if isinstance(e, StatementLine)
        ]

    def writes_only(self, rows: list[Any]) -> dict[str, Any]:
        """The worker's row writer alone over rows staged beforehand: the same writes as
        `stage`, without reading, parsing or classifying anything."""
        import_id = self.ids.new_id()
        gc.collect()
        started = time.perf_counter()
        writer = self.repo.row_writer("bench-writes-only", import_id)
        for row in rows:
            writer.add(row)
        writer.close()
        seconds = time.perf_counter() - started
        return {
            "documents": len(rows),
            "seconds": round(seconds, 3),
            "docs_per_s": round(len(rows) / seconds, 1),
        }

    def bulkwriter(self, docs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        from google.cloud.firestore_v1.bulk_writer import BulkWriterOptions

        col = self.db.collection("bench").document(self.ids.new_id()).collection("rows")
        options = BulkWriterOptions(initial_ops_per_second=1_000_000, max_ops_per_second=1_000_000)
        gc.collect()
        started = time.perf_counter()
        writer = self.db.bulk_writer(options=options)
        for doc_id, doc in docs:
            writer.set(col.document(doc_id), doc)
        writer.close()
        seconds = time.perf_counter() - started
        return {
            "documents": len(docs),
            "seconds": round(seconds, 3),
            "docs_per_s": round(len(docs) / seconds, 1),
            "options": "BulkWriterOptions(initial_ops_per_second=max_ops_per_second=1e6)",
        }


def parse_rate(data: bytes) -> dict[str, Any]:
    from load.samples import measure_parse_rate

    rate = measure_parse_rate(data, repeat=3)
    out = rate.to_json()
    out["lines_per_s"] = round(out["lines_per_s"], 1)
    out["seconds"] = round(out["seconds"], 3)
    return out


def sample(fmt: str, lines: int) -> bytes:
    from load.samples import csv_sample, ofx_sample

    return ofx_sample(lines) if fmt == "ofx" else csv_sample(lines, layout="generic")


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = dt.datetime.now(dt.UTC)
    log_dir = Path(tempfile.mkdtemp(prefix="valorize-bench-ingest-"))
    config = StackConfig(
        firestore=True,
        redis=False,
        storage=True,
        tasks=False,
        smtp=False,
        functions=[],
        gateway=False,
        log_dir=log_dir,
    )
    with Stack(config) as stack:
        os.environ.update(stack.env)
        name = f"bench.{args.format}"
        data = sample(args.format, args.lines)
        print(f"ingest: {args.lines} lines, {len(data):,} bytes of {args.format}", flush=True)
        bench = Bench(stack.env, args.writers)

        print("  parse rate ...", flush=True)
        parse = parse_rate(data)
        print(f"    {parse['lines_per_s']:,.0f} lines/s", flush=True)
        docs = bench.documents(data)

        # A fresh emulator's JVM is slow until it has compiled its hot paths: warm both
        # paths up first, then alternate their order each round (ABBA) so drift hits both.
        print("  warm-up ...", flush=True)
        warm = sample(args.format, 2_000)
        bench.stage(warm, name)
        bench.bulkwriter(bench.documents(warm))
        bench.writes_only(bench.staged_rows(warm))
        bench.commit(warm, name)
        rows = bench.staged_rows(data)
        commit_docs = bench.commit_documents(data)
        stages, bulks, raw, commits, commit_bulks = [], [], [], [], []
        for rnd in range(args.rounds):
            order = ["stage", "bulkwriter", "writes", "commit", "commit_bulkwriter"]
            if rnd % 2:
                order.reverse()
            for what in order:
                print(f"  round {rnd + 1}: {what} ...", flush=True)
                if what == "stage":
                    stages.append(bench.stage(data, name))
                    print(f"    {stages[-1]['rows_per_s']:,.0f} rows/s", flush=True)
                elif what == "bulkwriter":
                    bulks.append(bench.bulkwriter(docs))
                    print(f"    {bulks[-1]['docs_per_s']:,.0f} docs/s", flush=True)
                elif what == "writes":
                    raw.append(bench.writes_only(rows))
                    print(f"    {raw[-1]['docs_per_s']:,.0f} docs/s", flush=True)
                elif what == "commit":
                    commits.append(bench.commit(data, name))
                    print(f"    {commits[-1]['rows_per_s']:,.0f} rows/s", flush=True)
                else:
                    commit_bulks.append(bench.bulkwriter(commit_docs))
                    print(f"    {commit_bulks[-1]['docs_per_s']:,.0f} docs/s", flush=True)
        del docs, rows, commit_docs

        memory: dict[str, Any] = {}
        if not args.skip_memory:
            small_lines = max(args.lines // 2, 1)
            for label, n in (("small", small_lines), ("full", args.lines)):
                print(f"  memory: staging {n} lines under tracemalloc ...", flush=True)
                traced = bench.stage(sample(args.format, n), name, traced=True)
                memory[label] = {
                    "lines": n,
                    "peak_traced_bytes": traced["peak_traced_bytes"],
                    "rss_growth_bytes": traced["rss_growth_bytes"],
                }

    stage_rate = statistics.median(s["rows_per_s"] for s in stages)
    bulk_rate = statistics.median(b["docs_per_s"] for b in bulks)
    raw_rate = statistics.median(w["docs_per_s"] for w in raw)
    ratio = stage_rate / bulk_rate if bulk_rate else None
    commit_rate = statistics.median(c["rows_per_s"] for c in commits)
    commit_docs_rate = statistics.median(c["docs_per_s"] for c in commits)
    commit_bulk_rate = statistics.median(b["docs_per_s"] for b in commit_bulks)
    flat = None
    if memory:
        small, full = memory["small"]["peak_traced_bytes"], memory["full"]["peak_traced_bytes"]
        memory["peak_ratio_full_to_small"] = round(full / small, 2) if small else None
        # Twice the lines; "flat" allows 25% for noise (the allocator, gRPC buffers).
        flat = bool(small) and full / small < 1.25
    return {
        "benchmark": "ingest",
        "target": "TARGETS.md #4: staging >= 50% of a BulkWriter's rate, memory flat",
        "date": began.isoformat(timespec="seconds"),
        "machine": _machine(),
        "lines": args.lines,
        "format": args.format,
        "bytes": len(data),
        "writers": args.writers,
        "parse": parse,
        "stage": stages,
        "bulkwriter": bulks,
        "writes_only": raw,
        "stage_rows_per_s": stage_rate,
        "bulkwriter_docs_per_s": bulk_rate,
        "writes_only_docs_per_s": raw_rate,
        "ratio": round(ratio, 3) if ratio else None,
        "ratio_to_writes_only": round(stage_rate / raw_rate, 3) if raw_rate else None,
        "meets_ratio": ratio is not None and ratio >= TARGET_RATIO,
        "commit": commits,
        "commit_bulkwriter": commit_bulks,
        "commit_rows_per_s": commit_rate,
        "commit_docs_per_s": commit_docs_rate,
        "commit_bulkwriter_docs_per_s": commit_bulk_rate,
        "commit_to_stage": round(commit_rate / stage_rate, 3) if stage_rate else None,
        "commit_to_bulkwriter": round(commit_docs_rate / commit_bulk_rate, 3)
        if commit_bulk_rate
        else None,
        "memory": memory,
        "memory_flat": flat,
        "log_dir": str(log_dir),
    }


def _secs(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{run['seconds']} s" for run in runs)


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 1024 / 1024:.1f} MiB"


def markdown(r: dict[str, Any]) -> str:
    first = r["stage"][0]
    lines = [
        "# Ingest: a statement staged and committed beside a BulkWriter (TARGETS.md #4, issue 14)",
        "",
        f"{r['date']} · {r['machine']['cpu_count']} CPUs ({r['machine']['cpu_model']}) · "
        f"load {r['machine']['loadavg']} · commit {r['machine']['git_commit']}",
        "",
        f"A {r['lines']:,}-line {r['format'].upper()} statement ({r['bytes']:,} bytes), the "
        "Firestore and Storage emulators on this machine, the worker's code called directly "
        f"({r['writers']} staging batches in flight).",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| parse (parser alone) | {r['parse']['lines_per_s']:,.0f} lines/s |",
        f"| stage (upload → ready: 2 passes, classify, write rows) | "
        f"{r['stage_rows_per_s']:,.0f} rows/s ({_secs(r['stage'])}) |",
        f"| BulkWriter, same documents, same emulator | {r['bulkwriter_docs_per_s']:,.0f} docs/s "
        f"({_secs(r['bulkwriter'])}) |",
        f"| **stage / BulkWriter** | **{r['ratio']:.2f}** (target ≥ {TARGET_RATIO}) "
        f"{'✅' if r['meets_ratio'] else '❌'} |",
        f"| the worker's row writer alone (same rows, staged beforehand) | "
        f"{r['writes_only_docs_per_s']:,.0f} docs/s ({_secs(r['writes_only'])}); stage / it = "
        f"{r['ratio_to_writes_only']:.2f} |",
        f"| commit (ready → committed: transactions, rows marked, settled per chunk) | "
        f"{r['commit_rows_per_s']:,.0f} rows/s = {r['commit_docs_per_s']:,.0f} docs/s "
        f"({_secs(r['commit'])}) |",
        f"| BulkWriter, as many documents (each line's transaction and row) | "
        f"{r['commit_bulkwriter_docs_per_s']:,.0f} docs/s ({_secs(r['commit_bulkwriter'])}) |",
        f"| **commit / stage** (rows/s) | **{r['commit_to_stage']:.2f}** (a commit writes "
        "two documents a row, staging one) |",
        f"| **commit / BulkWriter** (docs/s) | **{r['commit_to_bulkwriter']:.2f}** |",
        f"| live progress | {first['progress_events']} `import.progress` events, at most "
        f"{first['max_seconds_without_progress']} s apart |",
        f"| RSS growth while staging | {_mib(first['rss_growth_bytes'])} |",
    ]
    mem = r["memory"]
    if mem:
        lines += [
            f"| tracemalloc peak, {mem['small']['lines']:,} lines | "
            f"{_mib(mem['small']['peak_traced_bytes'])} |",
            f"| tracemalloc peak, {mem['full']['lines']:,} lines | "
            f"{_mib(mem['full']['peak_traced_bytes'])} (x {mem['peak_ratio_full_to_small']}) "
            f"{'✅ flat' if r['memory_flat'] else '❌ grows'} |",
        ]
    lines += [
        "",
        "Staging is timed end to end: both streaming passes over the object in the Storage "
        "emulator, the per-account window query, classification, and every row document in "
        "batched writes of 500 with several batches in flight. The BulkWriter writes the very "
        "same row documents (built before its clock starts, so it parses nothing) with its "
        "rate limiter lifted. Most of a BulkWriter's time here is the client's generic "
        "encoder (proto-plus wrappers, field by field: about 0.5-1 ms per row document on "
        "this machine); the worker encodes its rows straight to protobuf, so its own floor is "
        "the row writer alone, reported beside it. Memory: the tracemalloc peaks at N/2 and N "
        "lines are about equal when nothing grows with the file (the FITIDs seen, kept to catch "
        "one repeated inside the file, are bounded to the last 10,000-20,000 lines).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--format", choices=("ofx", "csv"), default="ofx")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    args = parser.parse_args(argv)
    import json

    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        ("json", json.dumps(report, indent=2) + "\n"),
        ("md", markdown(report)),
    ):
        path = args.out / f"ingest.{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    print(markdown(report))
    return 0 if report["meets_ratio"] and report["memory_flat"] is not False else 1


if __name__ == "__main__":
    raise SystemExit(main())
