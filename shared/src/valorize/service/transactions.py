"""Transactions: create/read/update/delete, splits, transfers, filtered listing."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.events import (
    BalancesChanged,
    TransactionCreated,
    TransactionDeleted,
    TransactionUpdated,
)
from valorize.domain.model import (
    Split,
    Transaction,
    check_splits,
    make_transfer,
    mirror_transfer_change,
)
from valorize.domain.money import Money
from valorize.domain.search import TextQuery
from valorize.service.ports import (
    AccountStore,
    CategoryStore,
    Clock,
    EventBus,
    IdempotencyMark,
    Ids,
    Ledger,
    NullBus,
    PageResult,
    TransactionFilter,
)
from valorize.service.requests import (
    CreateTransaction,
    CreateTransfer,
    ListTransactions,
    SplitIn,
    UpdateTransaction,
)

if TYPE_CHECKING:
    from valorize.domain.rules import RuleSet

# The user's rules, loaded per request (RuleService.ruleset).
RulesProvider = Callable[[str], "RuleSet"]


class _Unchanged(Exception):
    """Raised inside an atomic update to abandon it: the rules changed nothing."""


def _splits(given: Sequence[SplitIn]) -> tuple[Split, ...]:
    return tuple(Split(s.category_id, s.amount, s.description) for s in given)


class TransactionService:
    def __init__(
        self,
        ledger: Ledger,
        account_store: AccountStore,
        category_store: CategoryStore,
        clock: Clock,
        ids: Ids,
        bus: EventBus | None = None,
        rules: RulesProvider | None = None,
    ) -> None:
        self.ledger = ledger
        self.account_store = account_store
        self.category_store = category_store
        self.clock = clock
        self.ids = ids
        self.bus: EventBus = bus or NullBus()
        self.rules = rules

    def _balances(
        self,
        user_id: str,
        moves: Sequence[tuple[str, int]],
        after: Mapping[str, Money] | None = None,
    ) -> None:
        """Announce the balances that moved: (account id, by how much) per change, and
        `after` them when the write answered them."""
        deltas: dict[str, int] = {}
        for account_id, amount in moves:
            deltas[account_id] = deltas.get(account_id, 0) + amount
        if deltas:
            known = tuple((a, after[a]) for a in deltas if after and a in after)
            self.bus.publish(BalancesChanged(user_id, tuple(deltas), tuple(deltas.items()), known))

    @staticmethod
    def _after(balances: Mapping[str, int], txns: Sequence[Transaction]) -> dict[str, Money]:
        """The balances a write answered, in their accounts' currencies (a transaction's is
        its account's)."""
        currency = {t.account_id: t.currency for t in txns}
        return {a: Money(amount, currency[a]) for a, amount in balances.items() if a in currency}

    @staticmethod
    def _wanted_categories(category_id: str | None, splits: Sequence[Split]) -> list[str]:
        return sorted({c for c in [category_id, *(s.category_id for s in splits)] if c})

    def _check_categories(
        self, user_id: str, category_id: str | None, splits: Sequence[Split]
    ) -> None:
        wanted = self._wanted_categories(category_id, splits)
        if not wanted:
            return
        # Ownership is checked on every reference: another user's category is "no such".
        found = self.category_store.get_categories(user_id, wanted)
        self._refuse_missing(category_id, splits, found.keys())

    @staticmethod
    def _refuse_missing(
        category_id: str | None, splits: Sequence[Split], found: Collection[str]
    ) -> None:
        if category_id and category_id not in found:
            raise ValidationFailed.on("category_id", "no such category")
        for i, split in enumerate(splits):
            if split.category_id and split.category_id not in found:
                raise ValidationFailed.on(f"splits.{i}.category_id", "no such category")

    def create(
        self, user_id: str, cmd: CreateTransaction, idem: IdempotencyMark | None = None
    ) -> Transaction:
        splits = _splits(cmd.splits)
        # The account, the categories (their ownership: another user's is "no such") and the
        # totals the money limits need, in one read; refused in the order they always were.
        inputs = self.ledger.read_create_inputs(
            user_id, cmd.account_id, self._wanted_categories(cmd.category_id, splits)
        )
        account = inputs.account
        if account is None:
            raise ValidationFailed.on("account_id", "no such account")
        check_splits(cmd.amount, splits, cmd.category_id)
        self._refuse_missing(cmd.category_id, splits, inputs.categories)
        now = self.clock.now()
        txn = Transaction(
            id=self.ids.new_id(),
            account_id=account.id,
            amount=cmd.amount,
            currency=account.currency,
            date=cmd.date,
            description=cmd.description,
            category_id=cmd.category_id,
            notes=cmd.notes,
            splits=splits,
            created_at=now,
            updated_at=now,
        )
        if self.rules is not None:
            ruleset = self.rules(user_id)
            if ruleset:
                txn = ruleset.apply(txn).transaction
                if cmd.category_id is not None:
                    # The category the caller chose wins over a rule's on a manual create.
                    txn = replace(txn, category_id=cmd.category_id)
        balances = self.ledger.add_transactions(
            user_id, [txn], idem.seal(txn) if idem else None, inputs
        )
        self.bus.publish(TransactionCreated(user_id, txn))
        self._balances(user_id, [(txn.account_id, txn.amount)], self._after(balances, [txn]))
        return txn

    def transfer(
        self, user_id: str, cmd: CreateTransfer, idem: IdempotencyMark | None = None
    ) -> tuple[Transaction, Transaction]:
        accounts = self.account_store.get_accounts(
            user_id, [cmd.from_account_id, cmd.to_account_id]
        )
        if cmd.from_account_id not in accounts:
            raise ValidationFailed.on("from_account_id", "no such account")
        if cmd.to_account_id not in accounts:
            raise ValidationFailed.on("to_account_id", "no such account")
        pair = make_transfer(
            out_id=self.ids.new_id(),
            in_id=self.ids.new_id(),
            transfer_id=self.ids.new_id(),
            source=accounts[cmd.from_account_id],
            destination=accounts[cmd.to_account_id],
            amount=cmd.amount,
            on=cmd.date,
            description=cmd.description,
            notes=cmd.notes,
            now=self.clock.now(),
        )
        balances = self.ledger.add_transactions(
            user_id, list(pair), idem.seal(pair) if idem else None
        )
        for side in pair:
            self.bus.publish(TransactionCreated(user_id, side))
        self._balances(
            user_id, [(t.account_id, t.amount) for t in pair], self._after(balances, pair)
        )
        return pair

    def get(self, user_id: str, transaction_id: str) -> Transaction:
        txn = self.ledger.get_transaction(user_id, transaction_id)
        if txn is None:
            raise NotFound("transaction not found")
        return txn

    def update(self, user_id: str, transaction_id: str, cmd: UpdateTransaction) -> Transaction:
        changes = cmd.given()
        if "splits" in changes:
            changes["splits"] = _splits(changes["splits"] or [])
        # References are checked once, outside the atomic section, which only re-reads the
        # transaction itself.
        self._check_categories(user_id, changes.get("category_id"), changes.get("splits", ()))
        now = self.clock.now()

        def mutate(
            txn: Transaction, counterpart: Transaction | None
        ) -> tuple[Transaction, Transaction | None]:
            if txn.is_transfer and (changes.get("splits")):
                raise ValidationFailed.on("splits", "a transfer cannot be split")
            new = replace(txn, **changes, updated_at=now)
            if txn.is_transfer:
                if new.amount == 0 or (new.amount > 0) != (txn.amount > 0):
                    raise ValidationFailed.on(
                        "amount", "a transfer side keeps its direction; delete and recreate it"
                    )
            elif (
                "splits" not in changes
                and new.splits
                and "category_id" in changes
                and new.category_id
            ):
                # Setting a category on a split transaction means: stop splitting.
                new = replace(new, splits=())
            elif changes.get("splits") and "category_id" not in changes:
                # And splitting a categorized one means: the parts carry the categories now.
                new = replace(new, category_id=None)
            check_splits(new.amount, new.splits, new.category_id, "splits" in changes)
            mirrored = mirror_transfer_change(new, counterpart) if counterpart else None
            return new, mirrored

        old, new, old_cp, new_cp = self.ledger.update_transaction(user_id, transaction_id, mutate)
        self.bus.publish(TransactionUpdated(user_id, new, old))
        moved = [(new.account_id, new.amount - old.amount)] if new.amount != old.amount else []
        if old_cp is not None and new_cp is not None:
            self.bus.publish(TransactionUpdated(user_id, new_cp, old_cp))
            if new_cp.amount != old_cp.amount:
                moved.append((new_cp.account_id, new_cp.amount - old_cp.amount))
        self._balances(user_id, moved)
        return new

    def apply_rules(
        self, user_id: str, transaction_id: str, ruleset: RuleSet
    ) -> Transaction | None:
        """Run the rules over a stored transaction through the update path (atomic, read
        models and events as for any edit); the rules see the transaction as it is at that
        moment. None when they change nothing (nothing is written) or it is gone."""
        now = self.clock.now()

        def mutate(
            txn: Transaction, counterpart: Transaction | None
        ) -> tuple[Transaction, Transaction | None]:
            outcome = ruleset.apply(txn)
            if not outcome.changed:
                raise _Unchanged
            return replace(outcome.transaction, updated_at=now), counterpart

        try:
            old, new, _, _ = self.ledger.update_transaction(user_id, transaction_id, mutate)
        except (_Unchanged, NotFound):
            return None
        self.bus.publish(TransactionUpdated(user_id, new, old))
        return new

    def delete(self, user_id: str, transaction_id: str) -> None:
        deleted = self.ledger.delete_transaction(user_id, transaction_id)
        for txn in deleted:
            self.bus.publish(TransactionDeleted(user_id, txn))
        self._balances(user_id, [(t.account_id, -t.amount) for t in deleted])

    def list(self, user_id: str, query: ListTransactions) -> PageResult[Transaction]:
        if query.from_ and query.to and query.from_ > query.to:
            raise ValidationFailed.on("from", "must not be after 'to'")
        low, high, text = query.min_amount, query.max_amount, query.q
        if low is not None and high is not None and low > high:
            raise ValidationFailed.on("min_amount", "must not exceed max_amount")
        flt = TransactionFilter(
            account_id=query.account_id,
            category_id=query.category_id,
            date_from=query.from_.isoformat() if query.from_ else None,
            date_to=query.to.isoformat() if query.to else None,
            type=query.type.value if query.type else None,
            import_id=query.import_id,
            min_magnitude=low,
            max_magnitude=high,
            text=TextQuery.of(text) if text else None,
        )
        return self.ledger.list_transactions(user_id, flt, query.limit, query.cursor)
