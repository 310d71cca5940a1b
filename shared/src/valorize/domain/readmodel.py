"""The dashboard's read model: per user and month, per currency, the counters a dashboard
needs and nothing it can derive.

    users/{uid}/months/{YYYY-MM} = {"currencies": {"BRL": {
        "income": 500000, "expense": 132000,                   # magnitudes, minor units
        "categories": {"<cid>|_none": {"income": .., "expense": ..,
                                       "accounts": {"<aid>": {"income": .., "expense": ..}}}},
        "accounts": {"<aid>": {"income": .., "expense": ..,
                               "transfers_in": .., "transfers_out": ..}},
    }}}

The write side changes it by field increments in the same atomic write as the transaction,
so it is never behind. Everything here is pure: `contribution` says what one transaction adds,
and a change is new contribution minus old.

Choices: a transaction with splits counts through its splits (as the original did), each part
as income or expense by its own sign; transfers between the user's own accounts are neither
income nor expense (they move money, they do not earn or spend it) but are kept per account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from valorize.domain.model import Transaction

UNCATEGORIZED = "_none"
Path = tuple[str, ...]


def month_of(txn: Transaction) -> str:
    return txn.date.isoformat()[:7]


def contribution(txn: Transaction) -> dict[Path, int]:
    """Field paths (below the month document) and what this transaction adds to each."""
    cur = txn.currency
    out: dict[Path, int] = defaultdict(int)
    if txn.is_transfer:
        side = "transfers_in" if txn.amount > 0 else "transfers_out"
        out[(cur, "accounts", txn.account_id, side)] += abs(txn.amount)
        return dict(out)
    parts = (
        [(s.category_id or UNCATEGORIZED, s.amount) for s in txn.splits]
        if txn.splits
        else [(txn.category_id or UNCATEGORIZED, txn.amount)]
    )
    for category, amount in parts:
        if amount == 0:
            continue
        kind = "income" if amount > 0 else "expense"
        size = abs(amount)
        out[(cur, kind)] += size
        out[(cur, "categories", category, kind)] += size
        out[(cur, "categories", category, "accounts", txn.account_id, kind)] += size
        out[(cur, "accounts", txn.account_id, kind)] += size
    return dict(out)


def change(old: Transaction | None, new: Transaction | None) -> dict[str, dict[Path, int]]:
    """Per month, the increments that turn the read model of `old` into that of `new`."""
    deltas: dict[str, dict[Path, int]] = defaultdict(lambda: defaultdict(int))
    if old is not None:
        for path, value in contribution(old).items():
            deltas[month_of(old)][path] -= value
    if new is not None:
        for path, value in contribution(new).items():
            deltas[month_of(new)][path] += value
    return {
        month: {p: v for p, v in paths.items() if v}
        for month, paths in deltas.items()
        if any(paths.values())
    }


def merge_changes(*changes: Mapping[str, Mapping[Path, int]]) -> dict[str, dict[Path, int]]:
    total: dict[str, dict[Path, int]] = defaultdict(lambda: defaultdict(int))
    for c in changes:
        for month, paths in c.items():
            for path, value in paths.items():
                total[month][path] += value
    return {m: {p: v for p, v in ps.items() if v} for m, ps in total.items() if any(ps.values())}


def nest(paths: Mapping[Path, Any]) -> dict[str, Any]:
    """{("BRL", "income"): x} -> {"BRL": {"income": x}} (Firestore merges nested maps)."""
    root: dict[str, Any] = {}
    for path, value in paths.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return root


def recompute(transactions: Iterable[Transaction]) -> dict[str, dict[str, Any]]:
    """The read model from scratch: the oracle the incremental one is checked against."""
    months: dict[str, dict[Path, int]] = defaultdict(lambda: defaultdict(int))
    for txn in transactions:
        for path, value in contribution(txn).items():
            months[month_of(txn)][path] += value
    return {m: nest({p: v for p, v in paths.items() if v}) for m, paths in months.items()}


def prune(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Drop zero counters and empty maps (a stored model keeps zeros after deletions)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            sub = prune(value)
            if sub:
                out[key] = sub
        elif value:
            out[key] = value
    return out
