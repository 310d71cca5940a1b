"""Account deletion benchmark (issue 14 item 3: "deleting a 30,000-transaction account
completes as a task with progress").

On the local stack (Firestore, Redis and Cloud Tasks emulators; the auth and accounts
functions behind the gateway), one user's account is loaded with N transactions (default
30,000), then deleted through the API: `DELETE /api/accounts/{id}?confirm=true` must answer
202 at once, `GET /api/accounts/{id}/deletion` is sampled every second until `done`, while the
Cloud Tasks emulator delivers the accounts function's deletion tasks (each deletes pages for
at most VALORIZE_ACCOUNT_DELETE_BUDGET_SECONDS, default 20 s, well under the 60 s timeout).

Loading goes through the ledger adapter in-process (`Ledger.add_transactions`, batches of
400, the read models and balances written as in production), the fastest honest path: an
import commit through HTTP runs at a few hundred rows/s here, which would take minutes more
than the deletion itself.

Side by side in the same run (`--baseline`, on by default): a second user's account of the
same size deleted in-process by the same pages in one loop with no task, no HTTP and no
budget: the floor of the page work on this emulator, so `chain ÷ floor` is what the tasks
cost. Afterwards every read model of both users must equal a recomputation (all zero).

    python load/delete.py [--transactions 30000] [--no-baseline] [--out load/results]

Writes <out>/delete.json and <out>/delete.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "load", ROOT / "shared" / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import requests  # noqa: E402
from coldstart import machine_info, write_atomic  # noqa: E402

from devstack.stack import Stack, StackConfig  # noqa: E402

BATCH = 400
PASSWORD = "delete bench password"
SAMPLE_EVERY = 1.0
DEADLINE = 3600.0
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
MERCHANTS = ("Mercado Extra", "UBER *TRIP", "Padaria", "Posto Shell", "iFood", "Salário ACME")
TASK_PATH = "/api/accounts/tasks/delete"


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.session.request(method, self.base + path, json=body, timeout=120)


def register(api: Api) -> str:
    email = f"delete-bench-{uuid.uuid4().hex[:12]}@valorize.dev"
    r = api.call(
        "POST",
        "/api/auth/register",
        {"email": email, "password": PASSWORD, "name": "Delete Bench", "preferred_currency": "BRL"},
    )
    r.raise_for_status()
    api.session.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return str(api.call("GET", "/api/auth/me").json()["id"])


def load(services: Any, uid: str, account_id: str, n: int, seed: int) -> float:
    """N transactions in the account, over five years; the seconds it took."""
    from valorize.domain.model import Transaction

    rng = random.Random(seed)
    txns = [
        Transaction(
            id=uuid.uuid4().hex,
            account_id=account_id,
            amount=rng.randint(100, 500_000) * rng.choice((-1, -1, -1, 1)),
            currency="BRL",
            date=dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(5 * 365)),
            description=f"{rng.choice(MERCHANTS)} {rng.randrange(10**6)}",
            created_at=NOW,
            updated_at=NOW,
        )
        for _ in range(n)
    ]
    started = time.perf_counter()
    # One batch at a time: concurrent batches increment the same month and account documents.
    for i in range(0, n, BATCH):
        services.ledger.add_transactions(uid, txns[i : i + BATCH])
    return time.perf_counter() - started


def consistent(services: Any, uid: str) -> bool:
    """Every read model equals a recomputation from what is left (nothing, here)."""
    from valorize.domain.readmodel import prune

    months = [f"{y}-{m:02d}" for y in range(2021, 2027) for m in range(1, 13)]
    stored = services.ledger.get_months(uid, months)
    return not any(prune(v) for v in stored.values()) and not prune(services.ledger.get_totals(uid))


def deliveries(log: Path) -> list[float]:
    """Seconds each deletion task delivery took, from the accounts function's request log."""
    took = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if TASK_PATH not in line or not line.startswith("{"):
            continue
        entry = json.loads(line)
        http = entry.get("httpRequest") or {}
        if http.get("requestUrl") == TASK_PATH and http.get("status") == 200:
            took.append(float(re.sub(r"s$", "", http.get("latency", "0s"))))
    return took


def chain(api: Api, account_id: str) -> dict[str, Any]:
    """DELETE (202), then the progress sampled every second until done."""
    started = time.monotonic()
    r = api.call("DELETE", f"/api/accounts/{account_id}?confirm=true")
    answered = time.monotonic() - started
    if r.status_code != 202:
        raise RuntimeError(f"DELETE answered {r.status_code}: {r.text[:300]}")
    location = r.headers["Location"]
    hidden = api.call("GET", f"/api/accounts/{account_id}").status_code == 404
    samples = [{"t": round(answered, 3), **r.json()}]
    while samples[-1]["state"] != "done":
        time.sleep(SAMPLE_EVERY)
        got = api.call("GET", location)
        got.raise_for_status()
        samples.append({"t": round(time.monotonic() - started, 3), **got.json()})
        if samples[-1]["t"] > DEADLINE:
            raise RuntimeError(f"not done after {DEADLINE:.0f} s: {samples[-1]}")
        if len(samples) % 15 == 0:
            s = samples[-1]
            print(f"    {s['t']:.0f} s: {s['deleted']:,} / {s['total']:,}", flush=True)
    return {
        "answered_s": answered,
        "status": r.status_code,
        "hidden_at_once": hidden,
        "seconds": samples[-1]["t"],
        "samples": [{k: s[k] for k in ("t", "state", "deleted", "total")} for s in samples],
    }


def floor(services: Any, uid: str, account_id: str, page: int) -> float:
    """The same pages in one loop, in-process: no task, no HTTP, no budget."""
    from valorize.domain.model import DeletionState

    store = services.account_store
    started = time.perf_counter()
    store.hide_account(uid, account_id, dt.datetime.now(dt.UTC))
    while True:
        d = store.delete_account_page(uid, account_id, page, dt.datetime.now(dt.UTC))
        if d is None or d.state is DeletionState.DONE:
            return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    from valorize import bootstrap
    from valorize.service.accounts import DELETE_BUDGET_SECONDS, DELETE_PAGE
    from valorize.service.ports import NullBus

    log_dir = Path(tempfile.mkdtemp(prefix="valorize-bench-delete-"))
    config = StackConfig(
        storage=False,
        smtp=False,
        functions=["auth", "accounts"],
        log_dir=log_dir,
        extra_env={"VALORIZE_WRITE_RATE": "100000/hour"},
    )
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "transactions": args.transactions,
        "page": DELETE_PAGE,
        "budget_s": DELETE_BUDGET_SECONDS,
        "timeout_s": 60,
    }
    with Stack(config) as stack:
        os.environ.update(stack.env)
        services = bootstrap.build(bus=NullBus())
        api = Api(str(stack.urls.base_url))
        uid = register(api)
        account = api.call(
            "POST", "/api/accounts", {"name": "Big", "type": "checking", "currency": "BRL"}
        ).json()
        print(f"delete: loading {args.transactions:,} transactions ...", flush=True)
        report["load_s"] = load(services, uid, account["id"], args.transactions, 14)
        print(f"  loaded in {report['load_s']:.0f} s; DELETE ...", flush=True)
        run_ = chain(api, account["id"])
        took = deliveries(stack.log_dir / "function-accounts.log")
        run_["deliveries"] = len(took)
        run_["delivery_s"] = {
            "max": max(took, default=0.0),
            "median": statistics.median(took) if took else 0.0,
        }
        run_["consistent"] = consistent(services, uid)
        run_["gone"] = api.call("GET", f"/api/accounts/{account['id']}").status_code == 404
        report["chain"] = run_
        print(
            f"  202 in {run_['answered_s'] * 1000:.0f} ms, done in {run_['seconds']:.0f} s "
            f"over {len(took)} deliveries (longest {run_['delivery_s']['max']:.1f} s)",
            flush=True,
        )
        write(report, args.out)
        if args.baseline:
            other = Api(str(stack.urls.base_url))
            uid2 = register(other)
            acc2 = other.call(
                "POST", "/api/accounts", {"name": "Big", "type": "checking", "currency": "BRL"}
            ).json()
            print("  baseline: loading ...", flush=True)
            load(services, uid2, acc2["id"], args.transactions, 15)
            print("  baseline: one in-process loop ...", flush=True)
            report["floor_s"] = floor(services, uid2, acc2["id"], DELETE_PAGE)
            report["floor_consistent"] = consistent(services, uid2)
            print(f"  floor {report['floor_s']:.0f} s", flush=True)
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write(report, args.out)
    return report


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "delete.json", json.dumps(report, indent=2) + "\n")
    write_atomic(out / "delete.md", markdown(report))


def markdown(r: dict[str, Any]) -> str:
    c = r["chain"]
    n = r["transactions"]
    m = r["machine"]
    samples = c["samples"]
    # About ten progress samples, evenly spread, for the report.
    shown = samples[:: max(1, len(samples) // 10)]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    floor_s = r.get("floor_s")
    lines = [
        f"# Deleting a {n:,}-transaction account as a task chain (local emulators)",
        "",
        f"{r['date']}, {m.get('cpu_count')} CPUs, Python {m.get('python')}, commit "
        f"{m.get('git_commit')}; load average {r['loadavg_before']} → "
        f"{r.get('loadavg_after', '…')}. Pages of {r['page']}; each task delivery deletes for "
        f"at most {r['budget_s']:.0f} s (the function's timeout: {r['timeout_s']} s). Loaded "
        f"in-process through `Ledger.add_transactions` in {r['load_s']:.0f} s.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| `DELETE ?confirm=true` answered | {c['status']} in {c['answered_s'] * 1000:.0f} ms "
        f"(account hidden at once: {'yes' if c['hidden_at_once'] else 'NO'}) |",
        f"| deletion done (first progress read `done`) | {c['seconds']:.0f} s "
        f"({n / c['seconds']:,.0f} transactions/s) |",
        f"| task deliveries | {c['deliveries']} (longest {c['delivery_s']['max']:.1f} s, median "
        f"{c['delivery_s']['median']:.1f} s) |",
        f"| account gone / read models equal a recomputation | {c['gone']} / {c['consistent']} |",
    ]
    if floor_s:
        lines.append(
            f"| floor: the same pages in one in-process loop (no task, no HTTP) | {floor_s:.0f} s;"
            f" chain ÷ floor = {c['seconds'] / floor_s:.2f} (consistent: "
            f"{r.get('floor_consistent')}) |"
        )
    if floor_s:
        lines += [
            "",
            "The chain and the floor run one after the other, not interleaved, on a shared "
            "machine (see the load average): a ratio near or below 1 says the tasks add no "
            "measurable cost to the page work, not that they make it faster. Pages get faster "
            "as the collection shrinks because the emulator scans it for each page's query "
            "(production Firestore reads the index).",
        ]
    lines += [
        "",
        "Progress as `GET /api/accounts/{id}/deletion` answered it (sampled every second):",
        "",
        "| t (s) | state | deleted | total |",
        "| --- | --- | --- | --- |",
        *(f"| {s['t']:.0f} | {s['state']} | {s['deleted']:,} | {s['total']:,} |" for s in shown),
        "",
        "Before (issue 14): 33,333 transactions were one synchronous request of 227 s, beyond "
        "the 60 s timeout (about 8,800 fit). Now the request answers at once and no delivery "
        "comes near the timeout; the total is the emulator's page work plus one task hand-off "
        "per budget.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--transactions", type=int, default=30_000)
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    args = parser.parse_args(argv)
    print(markdown(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
