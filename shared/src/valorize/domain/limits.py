"""The safe range of stored money: every balance and every read-model sum stays within
±(2^53-1) minor units, the largest integers every JSON client (a JavaScript number, a double)
represents exactly. Each amount is already capped there (service/commands.py); sums are kept
there by refusing (422) any write that would take one further out. Nothing else would stop
them: Firestore stores int64 and its Increment saturates at 2^63-1 without an error, so a
balance pushed past it would stick there and read wrong forever.

Which quantities are checked:

* each account's `balance` touched by the write;
* the all-time read-model sums of `users/{uid}/totals/all`: per currency `income` and
  `expense`, and per account `transfers_in` and `transfers_out`. Every read-model counter is a
  magnitude (never negative) and a part of one of these: a month's, a category's or an
  account's income is a part of the currency's all-time income, and so on. Keeping these in
  range keeps every counter of every month document in range, so a check reads one document
  however many months and categories the write touches.

How far a write can move a quantity is a `Reach`: its delta for an atomic write; for a write
in several batches (an import's commit or revert), everything its credits could add and
everything its debits could take, so that no intermediate state leaves the range either.

A move toward zero is always allowed: a value a race left slightly outside can be repaired.
The current values are read without making them a precondition of the write (they are not
re-checked at commit), which adds no contention on those hot documents. A stale read is
safe: between the read and the commit only concurrent writers can move the value, each by
at most one checked write, and int64 leaves 1,023 times the safe range of slack before
Firestore would saturate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from valorize.domain.errors import FieldError, ValidationFailed
from valorize.domain.readmodel import Path

SAFE_MAX: Final = 2**53 - 1
# How the API documents the refusal (route summaries).
REFUSAL: Final = "422 when a balance or a dashboard sum would go beyond ±(2^53-1) minor units"


@dataclass(frozen=True)
class Reach:
    """How far a write can move one quantity, down (`low` ≤ 0) and up (`high` ≥ 0)."""

    low: int = 0
    high: int = 0

    @classmethod
    def of(cls, delta: int) -> Reach:
        return cls(min(delta, 0), max(delta, 0))

    def __bool__(self) -> bool:
        return bool(self.low or self.high)


@dataclass(frozen=True)
class LedgerReach:
    """What a write can do to the checked quantities: balances by account id, all-time sums
    by read-model path (below `currencies`)."""

    balances: Mapping[str, Reach] = field(default_factory=dict)
    sums: Mapping[Path, Reach] = field(default_factory=dict)

    @classmethod
    def of(
        cls, balance_deltas: Mapping[str, int], changes: Mapping[str, Mapping[Path, int]]
    ) -> LedgerReach:
        """An atomic write's: its balance deltas and its read-model change (per month)."""
        sums: dict[Path, int] = defaultdict(int)
        for paths in changes.values():
            for path, value in paths.items():
                if bounds_the_read_model(path):
                    sums[path] += value
        return cls(
            {a: Reach.of(d) for a, d in balance_deltas.items() if d},
            {p: Reach.of(v) for p, v in sums.items() if v},
        )

    def __bool__(self) -> bool:
        return bool(self.balances or self.sums)


def bounds_the_read_model(path: Path) -> bool:
    """An all-time sum every other read-model counter is a part of."""
    if len(path) == 2:
        return path[1] in ("income", "expense")
    return len(path) == 4 and path[1] == "accounts" and path[3] in ("transfers_in", "transfers_out")


def value_at(tree: Mapping[str, Any], path: Path) -> int:
    """The counter at `path` of a nested read-model document (0 when absent)."""
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping):
            return 0
        node = node.get(key, 0)
    return node if isinstance(node, int) else 0


def beyond(current: int, reach: Reach) -> int | None:
    """The value the write could leave outside the safe range, moving away from zero; None
    when it stays inside (or only moves back toward it)."""
    if reach.high > 0 and current + reach.high > SAFE_MAX:
        return current + reach.high
    if reach.low < 0 and current + reach.low < -SAFE_MAX:
        return current + reach.low
    return None


class OutOfSafeRange(ValidationFailed):
    """422: the write would take a balance or a sum beyond ±(2^53-1) minor units."""

    def __init__(self, what: str, value: int, field_name: str) -> None:
        limit = f"±{SAFE_MAX:,} minor units (2^53-1)"
        super().__init__(
            f"this would take {what} to {value:,}, beyond the limit of {limit}: the largest "
            "amount every client can represent exactly",
            [FieldError(field_name, f"would take {what} beyond {limit}")],
        )
        self.extensions = {"limit": SAFE_MAX}


def _describe(path: Path) -> str:
    currency = path[0]
    if len(path) == 2:
        return f"your all-time {currency} {path[1]}"
    direction = "into" if path[3] == "transfers_in" else "out of"
    return f"your all-time {currency} transfers {direction} one account"


def check(
    reach: LedgerReach,
    balances: Mapping[str, tuple[str, int]],
    totals: Mapping[str, Any],
    field_name: str = "amount",
) -> None:
    """Raise OutOfSafeRange when the write could take a quantity out of the safe range.
    `balances`: account id → (name, current balance); `totals`: the all-time read model."""
    for account_id, moved in reach.balances.items():
        name, current = balances.get(account_id, ("", 0))
        value = beyond(current, moved)
        if value is not None:
            raise OutOfSafeRange(f"the balance of “{name}”", value, field_name)
    for path, moved in reach.sums.items():
        value = beyond(value_at(totals, path), moved)
        if value is not None:
            raise OutOfSafeRange(_describe(path), value, field_name)


# --- ceilings on what one user keeps ----------------------------------------------------------
#
# Each bounds what one user can make the platform store and, for rules, the work every one of
# their writes costs. The numbers are Settings (config.py), documented in README's "Limits";
# their defaults are in domain/ceilings.py. How the API documents the refusal:
CEILING_REFUSAL: Final = "422 naming the limit when you already have as many as a user may"


class LimitReached(ValidationFailed):
    """422: the user already has `limit` of `what` (the field is `what`, the problem's
    `limit` member the number)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"a user has at most {limit:,} {what}: delete one to make room",
            [FieldError(what, f"at most {limit:,} {what} per user")],
        )
        self.extensions = {"limit": limit}


def check_ceiling(what: str, existing: int, limit: int) -> None:
    """Refuse one more of `what` when the user already has `limit` (or more) of them."""
    if existing >= limit:
        raise LimitReached(what, limit)
