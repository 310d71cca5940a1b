"""Scale benchmark (issue 14 item 5): one user at 1,000 / 10,000 / 100,000 transactions on
the Firestore emulator: the transaction list (first page and every filter), every dashboard
view and the budget overview and month summary.

One user's history grows through the ledger adapter (`Ledger.add_transactions`, batches of
400, one at a time: the read models and balances are written as in production). Among the
background transactions (common merchants, 3 accounts, 8 categories, amounts up to R$ 5,000,
five years of dates, 2020 to 2024, so every month has its read model) sit NEEDLES
transactions that every "rare" filter selects and nothing else does: a description word
("Zéfiro"), an account, a category, a magnitude range and a day of their own. So at every
size a rare filter has the same few matches, and a page of them should read the same number
of documents: at 100,000 a scan would read thousands. The user also has four budget
envelopes (on the common categories), an income and a year of allocations, so the budget
overview has envelopes, rollovers and spending to add up.

At each size, for each read, called through its service as the HTTP handler calls it (the
list through `TransactionService.list` with `limit` 50; the views through `DashboardService`
and `BudgetService` with the query the route would parse; no HTTP cache on the way), best
of `--repeat`:

- `reads`: Firestore documents the call read, counted on the gRPC channel of the client the
  services use (`ReadCounter`): one per RunQuery response carrying a document, per
  BatchGetDocuments `found`, per GetDocument, per ListDocuments document. Every read is
  counted, whichever adapter makes it; for the list rows the ledger's own counter
  (FirestoreLedger.documents_read) is kept beside it in scale.json (`ledger_reads`);
- `results`: what the call returns: transactions on the page; for a view, the items it
  lists (months, categories, accounts, envelopes; 1 for a summary);
- `ours`: the service call (queries, decoding, the domain's arithmetic);
- `raw`: the very RPCs the call made (recorded by the counter, requests already
  serialized), replayed in order straight through a stub on the same channel, responses
  left as bytes: the emulator's own time for exactly our reads. It grows with the
  collection (the emulator scans; production Firestore reads the index), so what is ours is
  `ours / raw`, which should stay flat from 1,000 to 100,000.

The emulator evaluates array-contains by scanning every document's array: a text filter
(about 110 stored tokens a transaction: its description's distinct substrings of 1 to 3
characters, twice) costs it 2 to 5 ms per transaction in the collection, minutes per query
at 100,000, so the text filters are measured last at each size (the
short text first) and the report is rewritten after each row; `--repeat 1` for a first look.
Each other read is called once untimed before it is measured (a first call warms imports
and code paths up).

    python load/scale.py [--sizes 1000,10000,100000] [--repeat 3] [--out load/results]

Writes <out>/scale.json and <out>/scale.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared" / "src"))

from devstack.ports import free_port  # noqa: E402
from devstack.services import FirestoreEmulator  # noqa: E402

NEEDLES = 60
LIMIT = 50
BATCH = 400
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NEEDLE_DAY = dt.date(2022, 6, 15)
NEEDLE_AMOUNTS = (777_700, 777_799)
# The views' months: the history is 2020-01 to 2024-12. The budget month has 30 later
# months (the overview reads each) and a year of allocations before it (rollovers).
VIEW_MONTH = "2024-06"
LAST_MONTH = "2024-12"
BUDGET_MONTH = "2022-06"
ALLOCATED_MONTHS = 12
INCOME = 2_000_000
ALLOCATION = 300_000
MERCHANTS = (
    "Mercado Extra",
    "UBER *TRIP",
    "Padaria Pão de Açúcar",
    "Posto Shell",
    "Netflix.com",
    "Salário ACME",
    "Farmácia Pague Menos",
    "iFood *Restaurante",
    "PIX recebido João",
    "Conta de luz Enel",
)
FIRESTORE = "/google.firestore.v1.Firestore/"


def _uid() -> str:
    return uuid.uuid4().hex


# --- counting reads on the wire -------------------------------------------------------------


@dataclass
class Rpc:
    """One call the client made: what it asked (serialized, for the replay) and what it read."""

    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...]
    stream: bool
    documents: int = 0
    missing: int = 0

    def count(self, response: Any) -> None:
        name = self.method.removeprefix(FIRESTORE)
        if name == "RunQuery":
            self.documents += "document" in response
        elif name == "BatchGetDocuments":
            self.documents += "found" in response
            self.missing += "missing" in response
        elif name == "GetDocument":
            self.documents += 1
        elif name == "ListDocuments":
            self.documents += len(response.documents)


class _Counted:
    """A streaming call's responses, counted as the client consumes them; the rest of the
    call (cancel, metadata, callbacks) is the call's own."""

    def __init__(self, call: Any, rpc: Rpc) -> None:
        self._call, self._rpc = call, rpc

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        response = next(self._call)
        self._rpc.count(response)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class ReadCounter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Every RPC the Firestore client makes while `recording`, with the documents it read.

    Installed on the channel the client opens to the emulator (`install`, before the client's
    first call), under the client's own interceptors and retries: a retried call is recorded
    once per attempt, as Firestore would bill it."""

    def __init__(self) -> None:
        self.recording = False
        self.calls: list[Rpc] = []
        self.channel: grpc.Channel | None = None

    def install(self, client: Any) -> None:
        make = client._emulator_channel

        def channel(transport: Any) -> grpc.Channel:
            self.channel = make(transport)
            return grpc.intercept_channel(self.channel, self)

        client._emulator_channel = channel

    def _record(self, details: Any, request: Any, *, stream: bool) -> Rpc:
        rpc = Rpc(
            details.method,
            type(request).serialize(request),
            tuple(details.metadata or ()),
            stream,
        )
        self.calls.append(rpc)
        return rpc

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        outcome = continuation(details, request)
        if self.recording:
            rpc = self._record(details, request, stream=False)
            if outcome.exception() is None:
                rpc.count(outcome.result())
        return outcome

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        call = continuation(details, request)
        if not self.recording:
            return call
        return _Counted(call, self._record(details, request, stream=True))

    def replay(self, calls: list[Rpc]) -> float:
        """Seconds the emulator takes to answer `calls` again, in order, through plain stubs
        on the same channel: requests sent as recorded, responses left as bytes."""
        assert self.channel is not None
        stubs = [
            (
                self.channel.unary_stream(rpc.method)
                if rpc.stream
                else self.channel.unary_unary(rpc.method),
                rpc,
            )
            for rpc in calls
        ]
        started = time.perf_counter()
        for stub, rpc in stubs:
            if rpc.stream:
                for _ in stub(rpc.request, metadata=rpc.metadata):
                    pass
            else:
                stub(rpc.request, metadata=rpc.metadata)
        return time.perf_counter() - started


# --- the user --------------------------------------------------------------------------------


class World:
    """The user, its accounts, categories and budgets, and the ids of the rare ones."""

    def __init__(self, services: Any) -> None:
        from valorize.domain.model import (
            Account,
            AccountType,
            ApiToken,
            Category,
            CategoryType,
            Color,
            User,
        )

        self.services = services
        self.uid = _uid()
        # The views read the user (its preferred currency).
        services.user_store.create_user(
            User(self.uid, f"{self.uid}@scale.test", "Scale", "BRL", "pt-BR", NOW),
            "-",
            [],
            ApiToken(_uid(), self.uid, "scale", NOW),
            "-",
        )
        self.accounts = [
            Account(
                id=_uid(),
                name=f"Conta {i}",
                type=AccountType.CHECKING,
                currency="BRL",
                opening_balance=0,
                balance=0,
                created_at=NOW,
                updated_at=NOW,
            )
            for i in range(4)
        ]
        for a in self.accounts:
            services.account_store.add_account(self.uid, a)
        self.categories = [
            Category(
                id=_uid(),
                name=f"Categoria {i}",
                color=Color.RED,
                type=CategoryType.EXPENSE,
                created_at=NOW,
                updated_at=NOW,
            )
            for i in range(9)
        ]
        for c in self.categories:
            services.category_store.add_category(self.uid, c)
        self.rare_account, self.rare_category = self.accounts[-1], self.categories[-1]
        self.count = 0
        self.rng = random.Random(14)
        self.budget()

    def budget(self) -> None:
        """Envelopes on four common categories, an income from the first month, and each
        envelope's allocation for the year up to BUDGET_MONTH."""
        from valorize.service.dashboard import shift
        from valorize.service.requests import budgets as b

        budgets = self.services.budgets
        brl = {"currency": "BRL"}
        budgets.set_income(
            self.uid,
            b.SetIncome.model_validate({"month": "2020-01", "amount": {"amount": INCOME, **brl}}),
        )
        for c in self.categories[:4]:
            budget, _ = budgets.create(self.uid, b.CreateBudget(category_id=c.id))
            for k in range(ALLOCATED_MONTHS):
                cmd = {
                    "budget_id": budget.id,
                    "month": shift(BUDGET_MONTH, -k),
                    "amount": {"amount": ALLOCATION, **brl},
                }
                budgets.allocate(self.uid, b.Allocate.model_validate(cmd))

    def background(self, n: int) -> list[Any]:
        from valorize.domain.model import Transaction

        out = []
        for _ in range(n):
            day = dt.date(2020, 1, 1) + dt.timedelta(days=self.rng.randrange(5 * 365))
            if day == NEEDLE_DAY:
                day += dt.timedelta(days=1)
            amount = self.rng.randint(100, 500_000) * self.rng.choice((-1, -1, -1, 1))
            out.append(
                Transaction(
                    id=_uid(),
                    account_id=self.rng.choice(self.accounts[:-1]).id,
                    amount=amount,
                    currency="BRL",
                    date=day,
                    description=f"{self.rng.choice(MERCHANTS)} {self.rng.randrange(10**6)}",
                    created_at=NOW,
                    updated_at=NOW,
                    category_id=self.rng.choice(self.categories[:-1]).id,
                )
            )
        return out

    def needles(self) -> list[Any]:
        from valorize.domain.model import Transaction

        return [
            Transaction(
                id=_uid(),
                account_id=self.rare_account.id,
                amount=-self.rng.randint(*NEEDLE_AMOUNTS),
                currency="BRL",
                date=NEEDLE_DAY,
                description=f"Zéfiro Antiquário {i}",
                created_at=NOW,
                updated_at=NOW,
                category_id=self.rare_category.id,
            )
            for i in range(NEEDLES)
        ]

    def grow(self, to: int) -> float:
        """Add transactions until the user has `to`; returns the seconds it took."""
        txns = self.background(to - self.count - (0 if self.count else NEEDLES))
        if not self.count:
            txns += self.needles()
            self.rng.shuffle(txns)
        batches = [txns[i : i + BATCH] for i in range(0, len(txns), BATCH)]
        started = time.perf_counter()
        # One batch at a time: concurrent batches increment the same month and account
        # documents, which the emulator serialises with lock timeouts.
        for batch in batches:
            self.services.ledger.add_transactions(self.uid, batch)
        self.count = to
        return time.perf_counter() - started

    def filters(self) -> dict[str, dict[str, str]]:
        low, high = NEEDLE_AMOUNTS
        day = NEEDLE_DAY.isoformat()
        return {
            "first page": {},
            "text (q=zefiro)": {"q": "zefiro"},
            "amounts": {"min_amount": str(low), "max_amount": str(high)},
            "category": {"category_id": self.rare_category.id},
            "account": {"account_id": self.rare_account.id},
            "dates": {"from": day, "to": day},
            "text + category + amounts": {
                "q": "zefiro",
                "category_id": self.rare_category.id,
                "min_amount": str(low),
                "max_amount": str(high),
            },
            "all filters": {
                "q": "antiquario",
                "category_id": self.rare_category.id,
                "account_id": self.rare_account.id,
                "type": "debit",
                "from": day,
                "to": day,
                "min_amount": str(low),
                "max_amount": str(high),
            },
            # Common parts, a rare combination (about 1 in 1,000 of the background).
            "common text + category + amounts": {
                "q": "mercado",
                "category_id": self.categories[0].id,
                "min_amount": "100000",
                "max_amount": "150000",
            },
            # Shorter than a trigram: index-backed too (its unigrams and bigrams are stored).
            "short text (q=zé)": {"q": "zé"},
        }

    def views(self) -> dict[str, Callable[[], int]]:
        """Every dashboard view and the budget overview and summary, each called as its route
        calls it (query parsed by the route's schema), returning how many items it lists."""
        from valorize.entrypoints import dashboard_schemas as q
        from valorize.service.requests import budgets as b

        d, budgets, uid = self.services.dashboard, self.services.budgets, self.uid
        month = q.MonthQuery.model_validate({"month": VIEW_MONTH})
        trend = q.TrendQuery.model_validate({"end": LAST_MONTH, "months": "24"})
        spending = q.SpendingQuery.model_validate({"month": VIEW_MONTH})
        recent = q.RecentQuery.model_validate({})
        insights = q.InsightsQuery.model_validate({"end": LAST_MONTH, "months": "24"})
        category = self.categories[0].id
        budget_month = b.MonthQuery.model_validate({"month": BUDGET_MONTH})
        return {
            "dashboard: summary": lambda: 1 + len(d.summary(uid, month.month).other_currencies),
            "dashboard: trend (24 months)": lambda: len(
                d.trend(uid, trend.end, trend.months).months
            ),
            "dashboard: spending": lambda: len(
                d.spending(uid, spending.month, spending.top).categories
            ),
            "dashboard: recent": lambda: len(d.recent(uid, recent.limit)),
            "dashboard: accounts": lambda: len(d.accounts(uid, month.month).accounts),
            "dashboard: category insights (24 months)": lambda: len(
                d.category_insights(uid, category, insights.end, insights.months).monthly
            ),
            "budgets: overview": lambda: len(budgets.overview(uid, budget_month.month).envelopes),
            "budgets: month summary": lambda: int(
                budgets.month_summary(uid, budget_month.month).has_income
            ),
        }


def measure(
    services: Any, counter: ReadCounter, call: Callable[[], int], repeat: int
) -> dict[str, Any]:
    """`call` (a service call returning how many items it lists), best of `repeat`: the
    documents it read, its time, and the emulator's time for the same RPCs."""
    ledger = services.ledger
    ours, raw = [], []
    reads = ledger_reads = missing = results = 0
    for _ in range(repeat):
        counter.calls = []
        before = ledger.documents_read
        counter.recording = True
        started = time.perf_counter()
        try:
            results = call()
            ours.append(time.perf_counter() - started)
        finally:
            counter.recording = False
        calls = counter.calls
        reads = sum(rpc.documents for rpc in calls)
        missing = sum(rpc.missing for rpc in calls)
        ledger_reads = ledger.documents_read - before
        raw.append(counter.replay(calls))
    return {
        "reads": reads,
        "results": results,
        "ours_s": min(ours),
        "raw_s": min(raw),
        "ratio": min(ours) / min(raw),
        "rpcs": [rpc.method.removeprefix(FIRESTORE) for rpc in calls],
        "missing": missing,
        "ledger_reads": ledger_reads,
        "samples": {"ours": ours, "raw": raw},
    }


def rows(world: World) -> list[tuple[str, Callable[[], int], bool]]:
    """The reads to measure, in order, each with whether the emulator scans for it: the
    list's index-backed filters, the views, then the text filters, which the emulator
    answers by scanning (minutes each at 100,000), so a run stopped during them still has
    every other row."""
    from valorize.service.requests import ListTransactions

    def page(params: dict[str, str]) -> Callable[[], int]:
        query = ListTransactions.model_validate({"limit": str(LIMIT), **params})
        return lambda: len(world.services.transactions.list(world.uid, query).items)

    filters = world.filters()
    plain = [(name, page(p), False) for name, p in filters.items() if "q" not in p]
    views = [(name, call, False) for name, call in world.views().items()]
    # The short text first: the one the latest change to the index concerns.
    text = sorted(
        ((name, page(p), True) for name, p in filters.items() if "q" in p),
        key=lambda row: not row[0].startswith("short"),
    )
    return [*plain, *views, *text]


def client(settings: Any, counter: ReadCounter) -> Any:
    """The Firestore client as bootstrap makes it (deadlines bounded), its channel counted."""
    from google.cloud import firestore

    from valorize.adapters.firestore.deadlines import bound

    made = firestore.Client(project=settings.project)
    counter.install(made)
    bound(made, settings.firestore_deadline_seconds)
    return made


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Grow, then measure, size after size; the report is rewritten after each row, so a
    long run that is stopped still leaves what it measured."""
    from google.api_core.exceptions import GoogleAPICallError

    from valorize import bootstrap
    from valorize.config import Settings
    from valorize.service.ports import NullBus
    from valorize.service.requests import ListTransactions

    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "limit": LIMIT,
        "needles": NEEDLES,
        "repeat": args.repeat,
        "sizes": {},
    }
    emulator = FirestoreEmulator(free_port(), Path(tempfile.mkdtemp(prefix="scale-")))
    emulator.start()
    try:
        emulator.wait_ready(90)
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        # The emulator answers a text filter at 100,000 by scanning (~1 min), past the
        # functions' Firestore deadline (20 s) that production's index never comes near.
        settings = Settings(project="scale-bench", firestore_deadline_seconds=600.0)
        counter = ReadCounter()
        # No bus: the setup's budget writes would bump a cache and publish live events
        # through Redis, which this benchmark does not run (the reads use neither).
        services = bootstrap.build(settings, firestore=client(settings, counter), bus=NullBus())
        world = World(services)
        # The client's first call opens its channel: not a cost of any one read.
        services.transactions.list(world.uid, ListTransactions())
        for size in args.sizes:
            load_s = world.grow(size)
            print(f"{size} transactions loaded in {load_s:.1f} s", flush=True)
            measured: dict[str, Any] = {}
            report["sizes"][str(size)] = {"load_s": load_s, "filters": measured}
            reads = rows(world)
            # One untimed call of each fast read first: a first call pays for imports and
            # code paths warming up, which is no read's cost (the text reads, a minute each
            # at 100,000, are not warmed: that cost is lost in theirs).
            for _, call, scanned in reads:
                if not scanned:
                    call()
            for name, call, _ in reads:
                try:
                    row = measured[name] = measure(services, counter, call, args.repeat)
                except GoogleAPICallError as error:
                    # The emulator gives up on some scans at 100,000 (UNKNOWN, nothing in its
                    # log): the row says so and the run goes on to the next.
                    measured[name] = {"error": f"{type(error).__name__}: {error}"}
                    print(f"  {name}: failed, {measured[name]['error']}", flush=True)
                    write(report, args.out)
                    continue
                print(
                    f"  {name}: {row['reads']} reads, {row['results']} results, "
                    f"ours {row['ours_s'] * 1000:.0f} ms / raw {row['raw_s'] * 1000:.0f} ms",
                    flush=True,
                )
                write(report, args.out)
    finally:
        emulator.stop()
    return report


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in (("json", json.dumps(report, indent=2) + "\n"), ("md", markdown(report))):
        path = out / f"scale.{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def markdown(r: dict[str, Any]) -> str:
    sizes = list(r["sizes"])
    first, last = sizes[0], sizes[-1]
    names = list(r["sizes"][first]["filters"])
    head = " | ".join(f"{int(s):,}: reads / results / ours ms / raw ms / ours÷raw" for s in sizes)
    lines = [
        "# Scale: the transaction list, the dashboard and the budget overview at "
        + " / ".join(f"{int(s):,}" for s in sizes)
        + " transactions (Firestore emulator)",
        "",
        f"{r['date']}, {r['machine']['cpu_count']} CPUs, Python {r['machine']['python']}. "
        f"One user (history 2020-2024, four budget envelopes); {r['needles']} transactions "
        f"are the only match of each rare filter; pages of {r['limit']}; best of "
        f"{r['repeat']}. Each row is the service call its HTTP handler makes (no cache). "
        "`reads` = Firestore documents the call read, counted on the client's gRPC channel "
        "(every RunQuery document, BatchGetDocuments `found`, GetDocument, ListDocuments "
        "document); `raw` = the same RPCs replayed straight through a stub, responses left "
        "as bytes: the emulator's own time for exactly our reads, which grows with the "
        "collection because the emulator scans it (production reads the index). "
        f"Views: dashboard month {VIEW_MONTH}, trend and category insights the 24 months "
        f"to {LAST_MONTH}, budgets month {BUDGET_MONTH} (the overview reads that month's "
        "read model and every later one, and the all-time totals).",
        "",
        f"| read | {head} | reads {int(last):,} ÷ {int(first):,} | ours÷raw {int(last):,} "
        f"÷ {int(first):,} |",
        "| --- | " + " | ".join("---" for _ in sizes) + " | --- | --- |",
    ]
    for name in names:
        cells = []
        for s in sizes:
            row = r["sizes"][s]["filters"].get(name)
            cells.append(
                "not measured (the run was stopped)"
                if row is None
                else f"failed ({row['error']})"
                if "error" in row
                else f"{row['reads']} / {row['results']} / {row['ours_s'] * 1000:.0f} / "
                f"{row['raw_s'] * 1000:.0f} / {row['ratio']:.2f}"
            )
        a, b = r["sizes"][first]["filters"][name], r["sizes"][last]["filters"].get(name)
        if b is None or "error" in a or "error" in b:
            lines.append(f"| {name} | " + " | ".join(cells) + " | - | - |")
            continue
        growth = b["reads"] / a["reads"] if a["reads"] else float("nan")
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {growth:.2f} | {b['ratio'] / a['ratio']:.2f} |"
        )
    # The list rows' documents are all transactions, which the ledger counts too.
    differ = [
        f"{name} at {int(s):,} ({row['ledger_reads']} vs {row['reads']})"
        for s in sizes
        for name, row in r["sizes"][s]["filters"].items()
        if not name.startswith(("dashboard", "budgets"))
        and "error" not in row
        and row["ledger_reads"] != row["reads"]
    ]
    agree = (
        "The ledger's own counter (FirestoreLedger.documents_read) agrees with the channel's "
        "on every list row."
        if not differ
        else "The ledger's own counter (FirestoreLedger.documents_read) differs on "
        + "; ".join(differ)
        + "."
    )
    loads = ", ".join(f"{int(s):,} in {r['sizes'][s]['load_s']:.0f} s" for s in sizes)
    lines += [
        "",
        agree,
        "",
        "A call of a few milliseconds (the views; the pages at 1,000) moves by tens of "
        "milliseconds from one call to the next on a busy machine, so at a best of 1 its "
        "ours÷raw is as much noise as measure: `--repeat 3` or more for those.",
        "",
        f"Loading (through `Ledger.add_transactions`, cumulative): {loads}.",
        "",
        *(f"{note}\n" for note in r.get("notes", [])),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1_000, 10_000, 100_000]
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    args = parser.parse_args(argv)
    print(markdown(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
