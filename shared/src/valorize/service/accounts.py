"""Accounts: CRUD, opening balance, guarded deletion."""

from __future__ import annotations

from dataclasses import replace

from valorize.domain import ceilings
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.events import AccountChanged, AccountDeleted
from valorize.domain.limits import check_ceiling
from valorize.domain.model import Account
from valorize.service.ports import (
    Clock,
    EventBus,
    IdempotencyMark,
    Ids,
    NullBus,
    PageResult,
)
from valorize.service.ports.accounts import AccountStore
from valorize.service.requests import CreateAccount, UpdateAccount


class AccountService:
    def __init__(
        self,
        account_store: AccountStore,
        clock: Clock,
        ids: Ids,
        bus: EventBus | None = None,
        *,
        max_accounts: int = ceilings.MAX_ACCOUNTS,
    ) -> None:
        self.max_accounts = max_accounts
        self.account_store = account_store
        self.clock = clock
        self.ids = ids
        self.bus: EventBus = bus or NullBus()

    def create(
        self, user_id: str, cmd: CreateAccount, idem: IdempotencyMark | None = None
    ) -> Account:
        now = self.clock.now()
        account = Account(
            id=self.ids.new_id(),
            name=cmd.name,
            type=cmd.type,
            currency=cmd.currency,
            opening_balance=cmd.opening_balance,
            balance=cmd.opening_balance,
            bank_code=cmd.bank_code,
            bank_name=cmd.bank_name,
            number=cmd.number,
            low_balance_threshold=cmd.low_balance_threshold,
            created_at=now,
            updated_at=now,
        )
        # Read before the write, so concurrent creates can pass the limit by the few in
        # flight (the write rate limit bounds those); reads limit + 1 accounts at most.
        held = self.account_store.list_accounts(user_id, self.max_accounts, None).items
        check_ceiling("accounts", len(held), self.max_accounts)
        self.account_store.add_account(user_id, account, idem.seal(account) if idem else None)
        self.bus.publish(AccountChanged(user_id, account))
        return account

    def get(self, user_id: str, account_id: str) -> Account:
        account = self.account_store.get_account(user_id, account_id)
        if account is None:
            raise NotFound("account not found")
        return account

    def list(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        return self.account_store.list_accounts(user_id, limit, cursor)

    def update(self, user_id: str, account_id: str, cmd: UpdateAccount) -> Account:
        changes = cmd.given()
        now = self.clock.now()

        def mutate(account: Account) -> Account:
            currency = changes.get("currency", account.currency)
            if currency != account.currency and account.transaction_count:
                raise Conflict("the currency of an account with transactions cannot change")
            # The balance moves with the opening balance: balance = opening + transactions.
            delta = (
                changes.get("opening_balance", account.opening_balance) - account.opening_balance
            )
            return replace(account, **changes, balance=account.balance + delta, updated_at=now)

        account = self.account_store.update_account(user_id, account_id, mutate)
        self.bus.publish(AccountChanged(user_id, account))
        return account

    def delete(self, user_id: str, account_id: str, confirm: bool) -> None:
        account = self.get(user_id, account_id)
        if account.transaction_count and not confirm:
            raise Conflict(
                f"the account has {account.transaction_count} transactions; "
                "repeat with ?confirm=true to delete it and them"
            )
        self.account_store.delete_account(user_id, account_id)
        self.bus.publish(AccountDeleted(user_id, account_id))
