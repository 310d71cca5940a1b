"""Accounts (their balance and transaction count move with the ledger)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from valorize.domain.model import Account, AccountDeletion
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


class AccountStore(Protocol):
    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_account(self, user_id: str, account_id: str) -> Account | None: ...
    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]: ...
    def list_accounts(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        """By id."""
        ...

    def update_account(
        self, user_id: str, account_id: str, mutate: Callable[[Account], Account]
    ) -> Account:
        """Write `mutate(account)` if it did not change since it was read (else read again).
        The balance moves by the difference (concurrent ledger writes are kept), within the
        money limits; the transaction count is the ledger's. NotFound when it is gone."""
        ...

    # --- deletion, a page at a time (service/accounts.py runs it as a chain of tasks) -------

    def hide_account(
        self, user_id: str, account_id: str, now: datetime
    ) -> tuple[AccountDeletion, bool] | None:
        """Hide it (gone from every read above and from update_account, so nothing new is
        written to it) and record its deletion (total: its transaction count) in one write.
        Returns the deletion and True; when it was hidden already, the deletion as recorded
        and False; None when there is no such account and no deletion of it."""
        ...

    def get_deletion(self, user_id: str, account_id: str) -> AccountDeletion | None: ...

    def delete_account_page(
        self, user_id: str, account_id: str, limit: int, now: datetime
    ) -> AccountDeletion | None:
        """Delete up to `limit` of a hidden account's transactions (taken off the read models;
        the other side of a transfer stays in its account, still a transfer, unlinked),
        counting them into the deletion in the same write; when none are left, the account
        goes and the deletion is done, in one write. Safe to run concurrently: a transaction
        is counted and taken off the models once. Returns the deletion as it then stands
        (unchanged when already done); None when there is no deletion."""
        ...

    def advance_deletion(
        self, user_id: str, account_id: str, step: int, now: datetime
    ) -> AccountDeletion | None:
        """Move a running deletion from `step` to step + 1 (unchanged at any other step or
        when done); the deletion as it then stands, None when there is none."""
        ...
