"""Scale benchmark (issue 14 item 5): the transaction list of one user at 1,000 / 10,000 /
100,000 transactions, every filter, on the Firestore emulator.

One user's history grows through the ledger adapter (`Ledger.add_transactions`, batches of
400, one at a time: the read models and balances are written as in production). Among the
background transactions (common merchants, 3 accounts, 8 categories, amounts up to R$ 5,000,
five years of dates) sit NEEDLES transactions that every "rare" filter selects and nothing
else does: a description word ("Zéfiro"), an account, a category, a magnitude range and a day
of their own. So at every size a rare filter has the same few matches, and a page of them
should read the same number of documents: at 100,000 a scan would read thousands.

At each size, for the first page and a page of each filter (`limit` 50, through
`TransactionService.list`, as the HTTP handler calls it), best of `--repeat`:

- `reads`: transaction documents the ledger read (FirestoreLedger.documents_read);
- `results`: transactions on the page;
- `ours`: the service call (query, decoding, the substring check);
- `raw`: the same Firestore query (adapters/firestore/ledger.py `list_query`, limit 51)
  streamed by the official client with nothing decoded: the emulator's own time, which grows
  with the collection (it scans; production Firestore reads the index), so what is ours is
  `ours / raw`, which should stay flat from 1,000 to 100,000.

The emulator evaluates array-contains by scanning every document's array: a text filter
(about 60 stored tokens a transaction) costs it ~2 ms per transaction in the collection,
minutes per query at 100,000, so a full run takes hours; `--repeat 1` for a first look.

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
from pathlib import Path
from typing import Any

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


def _uid() -> str:
    return uuid.uuid4().hex


class World:
    """The user, its accounts and categories, and the ids of the rare ones."""

    def __init__(self, services: Any) -> None:
        from valorize.domain.model import Account, AccountType, Category, CategoryType, Color

        self.services = services
        self.uid = _uid()
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
            # Shorter than a trigram: still a bounded scan (SCAN_LIMIT per page).
            "short text (q=zé)": {"q": "zé"},
        }


def measure(world: World, params: dict[str, str], repeat: int) -> dict[str, Any]:
    from valorize.adapters.firestore.ledger import list_query
    from valorize.service.requests import ListTransactions

    services = world.services
    ledger = services.ledger
    query = ListTransactions.model_validate({"limit": str(LIMIT), **params})
    captured: dict[str, Any] = {}
    real = ledger.list_transactions

    def spy(user_id: str, flt: Any, limit: int, cursor: str | None) -> Any:
        captured["flt"] = flt
        return real(user_id, flt, limit, cursor)

    ledger.list_transactions = spy
    ours, raw, reads, results = [], [], 0, 0
    try:
        for _ in range(repeat):
            before = ledger.documents_read
            started = time.perf_counter()
            page = services.transactions.list(world.uid, query)
            ours.append(time.perf_counter() - started)
            reads, results = ledger.documents_read - before, len(page.items)
            col = services.firestore.collection("users").document(world.uid)
            q = list_query(col.collection("transactions"), captured["flt"], None)
            started = time.perf_counter()
            list(q.limit(LIMIT + 1).stream())
            raw.append(time.perf_counter() - started)
    finally:
        del ledger.list_transactions
    return {
        "reads": reads,
        "results": results,
        "ours_s": min(ours),
        "raw_s": min(raw),
        "ratio": min(ours) / min(raw),
        "samples": {"ours": ours, "raw": raw},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Grow, then measure, size after size; the report is rewritten after each size, so a
    long run that is stopped still leaves its smaller sizes."""
    from valorize import bootstrap
    from valorize.config import Settings
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
        world = World(bootstrap.build(settings))
        # The client's first call opens its channel: not a cost of any one filter.
        world.services.transactions.list(world.uid, ListTransactions())
        for size in args.sizes:
            load_s = world.grow(size)
            print(f"{size} transactions loaded in {load_s:.1f} s", flush=True)
            rows: dict[str, Any] = {}
            report["sizes"][str(size)] = {"load_s": load_s, "filters": rows}
            # Text filters last: the emulator scans for them (minutes each at 100,000), so a
            # run stopped at a size still reports its index-backed filters; the report is
            # rewritten after each filter.
            filters = sorted(world.filters().items(), key=lambda item: "q" in item[1])
            for name, params in filters:
                row = rows[name] = measure(world, params, args.repeat)
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
        "# Scale: the transaction list at "
        + " / ".join(f"{int(s):,}" for s in sizes)
        + " transactions (Firestore emulator)",
        "",
        f"{r['date']}, {r['machine']['cpu_count']} CPUs, Python {r['machine']['python']}. "
        f"One user; {r['needles']} transactions are the only match of each rare filter; "
        f"pages of {r['limit']}; best of {r['repeat']}. `reads` = transaction documents the "
        "ledger read for the page; `raw` = the same Firestore query (limit 51) streamed by the "
        "official client, nothing decoded: the emulator's own time, which grows with the "
        "collection because the emulator scans it (production reads the index).",
        "",
        f"| filter | {head} | reads {int(last):,} ÷ {int(first):,} | ours÷raw {int(last):,} "
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
                else f"{row['reads']} / {row['results']} / {row['ours_s'] * 1000:.0f} / "
                f"{row['raw_s'] * 1000:.0f} / {row['ratio']:.2f}"
            )
        a, b = r["sizes"][first]["filters"][name], r["sizes"][last]["filters"].get(name)
        if b is None:
            lines.append(f"| {name} | " + " | ".join(cells) + " | - | - |")
            continue
        growth = b["reads"] / a["reads"] if a["reads"] else float("nan")
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {growth:.2f} | {b['ratio'] / a['ratio']:.2f} |"
        )
    loads = ", ".join(f"{int(s):,} in {r['sizes'][s]['load_s']:.0f} s" for s in sizes)
    lines += ["", f"Loading (through `Ledger.add_transactions`, cumulative): {loads}.", ""]
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
