"""The ledger: transactions, the account balances they move and the read models (months and
all-time totals) derived from them, which always commit together.

Every write of the ledger is one unit of work: the transactions, the balance increments of
their accounts and the read-model increments are one atomic write (with the Idempotency-Key
record when there is one), checked against the money limits first. The writes that span
another aggregate (an account deleted with its transactions, a category's transactions moved
off it, a recurrence's occurrences, an import's rows) are methods of that aggregate's store,
whose adapter stages the ledger's part in the same unit of work."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from valorize.domain.ids import encode_cursor
from valorize.domain.limits import LedgerReach
from valorize.domain.model import Account, Transaction
from valorize.domain.search import TextQuery
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


@dataclass(frozen=True)
class TransactionFilter:
    """What a list selects. Everything but `predicate` is answered by an index, so a page of
    a rare match reads about `limit` documents."""

    account_id: str | None = None
    category_id: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    type: str | None = None
    import_id: str | None = None
    # The magnitude |amount|, in minor units, both ends inclusive.
    min_magnitude: int | None = None
    max_magnitude: int | None = None
    # Case- and accent-insensitive substring of the description (domain/search.py).
    text: TextQuery | None = None
    # Checked on what the index selects (a rules job's conditions), a bounded scan.
    predicate: Callable[[Transaction], bool] | None = field(default=None, compare=False)

    def check(self) -> Callable[[Transaction], bool] | None:
        """What is left to check on each transaction the query returns: the predicate and
        the text's whole substring (the index only narrows to one of its tokens)."""
        text, predicate = self.text, self.predicate
        if text is None:
            return predicate
        if predicate is None:
            return lambda t: text.matches(t.description)
        return lambda t: text.matches(t.description) and predicate(t)


# A page with something left to check stops after this many transactions and hands back a
# cursor, so a needle-in-a-haystack check costs bounded reads per request.
SCAN_LIMIT = 2000


def filtered_page(
    scanned: Iterable[Transaction], keep: Callable[[Transaction], bool], limit: int
) -> PageResult[Transaction]:
    """A page of the transactions `scanned` (newest first from the cursor on, at most
    SCAN_LIMIT of them) that `keep` passes: up to `limit` of them, with the cursor after the
    last one when another passes, or after the last one looked at when the scan stopped at
    its bound; no cursor when the scan reached the end."""
    items: list[Transaction] = []
    last_seen: str | None = None
    count = 0
    for t in scanned:
        count += 1
        if keep(t):
            if len(items) == limit:
                return PageResult(items, encode_cursor(items[-1].sort_key))
            items.append(t)
        last_seen = t.sort_key
    if count < SCAN_LIMIT or last_seen is None:
        return PageResult(items, None)
    return PageResult(items, encode_cursor(last_seen))


# A transaction and its transfer counterpart (None when it has none, or it is gone).
Pair = tuple[Transaction, Transaction | None]


@dataclass(frozen=True)
class CreateInputs:
    """What a manual create reads before it writes, in one round trip (a create is a fifth of
    the original's mixed load, and each read is one more call for Firestore to serve): its
    account (None: absent or being deleted), which of the asked categories exist, and the
    all-time totals the money limits check. A stale read is safe for the limits (see
    domain/limits.py), so the write checks against these instead of reading them again."""

    account: Account | None
    categories: frozenset[str]
    totals: dict[str, Any]


class Ledger(Protocol):
    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
        inputs: CreateInputs | None = None,
    ) -> dict[str, int]:
        """Create them with their balance and read-model increments, all or nothing, and
        answer each of their accounts' balance just after the write (as the write itself
        left it: no read after it). NotFound when an account is gone; IdempotentReplay when
        the key was used. With `inputs` (read by read_create_inputs for their only account),
        the money limits are checked against those values, without another read."""
        ...

    def read_create_inputs(
        self, user_id: str, account_id: str, category_ids: Sequence[str]
    ) -> CreateInputs:
        """The account, the existing ones of `category_ids` and the totals, read together."""
        ...

    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None: ...
    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], Pair],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        """Write `mutate(transaction, counterpart)` (and the mirrored counterpart) if neither
        changed since they were read, else read again. Returns (old, new, old counterpart,
        new counterpart)."""
        ...

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        """Delete it (and the other side of a transfer); returns what was deleted."""
        ...

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]:
        """Newest first (by `sort_key`). With something left to check (`flt.check()`), a
        page scans at most SCAN_LIMIT transactions and may come back short with a cursor."""
        ...

    # the read models
    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The read model of these months ("YYYY-MM"); a month with no activity is absent."""
        ...

    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]:
        """Every month's read model from `month` on."""
        ...

    def get_totals(self, user_id: str) -> dict[str, Any]:
        """The all-time read model (a month's shape)."""
        ...

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        """Raise OutOfSafeRange (422) when a write that moves balances and all-time sums as
        `reach` says could take one out of the safe range (domain/limits.py). The ledger
        writes call it themselves; a write in several batches (an import's commit or
        revert) calls it once, up front, with everything it will do."""
        ...
