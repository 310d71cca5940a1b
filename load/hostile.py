"""The hostile-input suite's long run (issue 12, "Hostile input suite"): schemathesis over
every operation of the merged OpenAPI document (tests/e2e/test_conformance.py, the suite's
bounded test) with many more examples, on a fresh stack, then its figures in the section
"Hostile input: schemathesis" of load/results/reliability.md (other sections, from other
runs, are left as they are).

    python load/hostile.py [--examples 100] [--out load/results]      # or: nox -s hostile

Figures: operations, requests, answers by status class, 5xx, check failures (per operation,
with the first messages), time taken. Generation is derandomized: the same examples give the
same requests."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/e2e/test_conformance.py"
TITLE = "## Hostile input: schemathesis over the OpenAPI document"
REPORT = "reliability.md"
HEADER = (
    "# Reliability\n\n"
    "Faults injected, hostile input tried, and what came back; each section from one "
    "rerunnable command, replaced by its next run.\n"
)


def run(examples: int, tally: Path) -> tuple[int, float]:
    env = {
        **os.environ,
        "VALORIZE_CONFORMANCE_EXAMPLES": str(examples),
        "VALORIZE_CONFORMANCE_TALLY": str(tally),
    }
    started = time.monotonic()
    # Every operation runs to its end (no -x); an operation may take long with many examples.
    code = subprocess.call(
        [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider", "--timeout=3600"],
        cwd=ROOT,
        env=env,
    )
    return code, time.monotonic() - started


def section(data: dict[str, Any], code: int, seconds: float) -> str:
    requests: Counter[str] = Counter(data["requests"])
    errors: Counter[str] = Counter(data["server_errors"])
    failures: Counter[str] = Counter(data["failures"])
    classes: Counter[str] = Counter(data.get("classes", {}))
    total = sum(requests.values())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        TITLE,
        "",
        f"`nox -s hostile -- --examples {data['examples']}` "
        f"({dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}, commit {commit}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}): every operation of "
        "`openapi/openapi.json` through the gateway as a fresh registered user (internal "
        "operations at their function, with the stack's internal credentials), positive and "
        f"negative data, up to {data['examples']} generated examples per operation besides "
        "schemathesis' coverage cases (boundaries, missing and wrong-typed values), "
        "derandomized.",
        "",
        "Checks on every answer: not_a_server_error, status_code_conformance, "
        "content_type_conformance, response_headers_conformance, "
        "response_schema_conformance, negative_data_rejection, positive data accepted "
        "(schemathesis' positive_data_acceptance less the refusals no JSON Schema of "
        "independent fields can state, listed in `STATEFUL_REFUSALS` of the test: a "
        "reference to something the user does not have, a cursor the API never issued, a "
        "per-user ceiling, one field against another, today's date, RE2 patterns, an upload "
        "that is not a statement), and every error problem+json naming its fields.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| operations | {len(requests)} |",
        f"| requests | {total:,} |",
        *(f"| answers {k} | {classes[k]:,} |" for k in sorted(classes)),
        f"| 5xx | {sum(errors.values())} |",
        f"| responses failing a check | {sum(failures.values())} |",
        f"| operations with a failure | {len(failures)} |",
        f"| time | {seconds / 60:.1f} min |",
        f"| pytest exit status | {code} |",
        "",
    ]
    if failures:
        lines += ["Failures, per operation (first messages):", ""]
        for label, count in sorted(failures.items()):
            lines.append(f"- `{label}`: {count} failing response(s)")
            for sample in data["samples"].get(label, [])[:2]:
                first = " ".join(sample.split())[:300]
                lines.append(f"  - {first}")
        lines.append("")
    busiest = ", ".join(f"`{k}` {v}" for k, v in requests.most_common(5))
    lines += [f"Most requests: {busiest}.", ""]
    return "\n".join(lines)


def write(out: Path, text: str) -> Path:
    """Replace this run's section of the report, keeping the others."""
    path = out / REPORT
    old = path.read_text(encoding="utf-8") if path.exists() else HEADER
    start = old.find(TITLE)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(TITLE))
        new = old[:start] + text + ("\n" + old[end + 1 :] if end >= 0 else "")
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=100, help="per operation and mode")
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    args = parser.parse_args()
    tally = ROOT / ".local" / "hostile-tally.json"
    tally.parent.mkdir(parents=True, exist_ok=True)
    tally.unlink(missing_ok=True)
    code, seconds = run(args.examples, tally)
    if not tally.exists():
        print("the run wrote no figures", file=sys.stderr)
        return code or 1
    data = json.loads(tally.read_text(encoding="utf-8"))
    print(f"wrote {write(args.out, section(data, code, seconds))}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
