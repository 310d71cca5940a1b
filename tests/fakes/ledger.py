"""The Ledger port in memory (adapters/firestore/ledger.py). Read models are recomputed
from the transactions on every read: the oracle the adapter's increments must match."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tests.fakes.memory import Memory
from valorize.domain import ids, search
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.limits import LedgerReach
from valorize.domain.model import Transaction
from valorize.service.ports import IdempotencyRecord, PageResult, TransactionFilter
from valorize.service.ports.ledger import SCAN_LIMIT, CreateInputs, Pair, filtered_page


class InMemoryLedger:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
        inputs: CreateInputs | None = None,
    ) -> dict[str, int]:
        # `inputs` spares the adapter a read; here the limits are checked on the state itself.
        self.memory.check_idem(user_id, idem)
        self.memory.post(
            user_id, [], transactions, missing="a referenced resource no longer exists"
        )
        self.memory.save_idem(user_id, idem)
        accounts = self.memory.space(user_id).accounts
        return {t.account_id: accounts[t.account_id].balance for t in transactions}

    def read_create_inputs(
        self, user_id: str, account_id: str, category_ids: Sequence[str]
    ) -> CreateInputs:
        space = self.memory.space(user_id)
        hidden = account_id in space.account_deletions
        return CreateInputs(
            None if hidden else space.accounts.get(account_id),
            frozenset(c for c in category_ids if c in space.categories),
            self.memory.totals(user_id),
        )

    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None:
        return self.memory.space(user_id).transactions.get(transaction_id)

    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], Pair],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        txns = self.memory.space(user_id).transactions
        old = txns.get(transaction_id)
        if old is None:
            raise NotFound("transaction not found")
        old_cp = txns.get(old.counterpart_id) if old.counterpart_id else None
        new, new_cp = mutate(old, old_cp)
        pairs = [(old, new)] + ([(old_cp, new_cp)] if old_cp and new_cp else [])
        self.memory.post(
            user_id,
            [o for o, _ in pairs],
            [n for _, n in pairs],
            missing="the transaction's account no longer exists",
        )
        return old, new, old_cp, new_cp

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        txns = self.memory.space(user_id).transactions
        victim = txns.get(transaction_id)
        if victim is None:
            raise NotFound("transaction not found")
        victims = [victim]
        # Deleting one side of a transfer deletes both.
        if victim.counterpart_id and victim.counterpart_id in txns:
            victims.append(txns[victim.counterpart_id])
        self.memory.post(user_id, victims, [], missing="the transaction's account no longer exists")
        return victims

    @staticmethod
    def _indexed(t: Transaction, flt: TransactionFilter) -> bool:
        """The part of the filter the adapter hands to the Firestore query (list_query)."""
        if flt.account_id is not None and t.account_id != flt.account_id:
            return False
        if flt.type is not None and t.type.value != flt.type:
            return False
        if flt.import_id is not None and t.import_id != flt.import_id:
            return False
        if flt.text is not None and flt.text.indexed:
            # The stored tokens, as the encoder writes them.
            wanted = flt.text.tokens(flt.category_id)
            if not set(wanted) & set(search.tokens(t.description, t.category_ids)):
                return False
        elif flt.category_id is not None and flt.category_id not in t.category_ids:
            return False
        if flt.min_magnitude is not None and abs(t.amount) < flt.min_magnitude:
            return False
        if flt.max_magnitude is not None and abs(t.amount) > flt.max_magnitude:
            return False
        if flt.date_from is not None and not t.sort_key >= flt.date_from:
            return False
        # "$" sorts right after "#", so every key of that day is included.
        return flt.date_to is None or t.sort_key < flt.date_to + "$"

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]:
        position = decode_cursor(cursor, ids.TRANSACTION_CURSOR) if cursor else None
        rows = sorted(
            (t for t in self.memory.space(user_id).transactions.values() if self._indexed(t, flt)),
            key=lambda t: t.sort_key,
            reverse=True,
        )
        if position is not None:
            rows = [t for t in rows if t.sort_key < position]
        keep = flt.check()
        if keep is None:
            page = rows[: limit + 1]
            head = page[:limit]
            return PageResult(head, encode_cursor(head[-1].sort_key) if len(page) > limit else None)
        return filtered_page(rows[:SCAN_LIMIT], keep, limit)

    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]:
        model = self.memory.months(user_id)
        return {m: model[m] for m in dict.fromkeys(months) if m in model}

    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]:
        return {m: v for m, v in self.memory.months(user_id).items() if m >= month}

    def get_totals(self, user_id: str) -> dict[str, Any]:
        return self.memory.totals(user_id)

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        self.memory.check_limits(user_id, reach, field_name)
