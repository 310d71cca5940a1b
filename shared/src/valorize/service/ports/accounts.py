"""Accounts (their balance and transaction count move with the ledger)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from valorize.domain.model import Account
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

    def delete_account(self, user_id: str, account_id: str) -> None:
        """Delete it and its transactions (taken off the read models). The other side of a
        transfer stays in its account, still a transfer, unlinked. A delete interrupted
        half-way leaves the account hidden; repeating it finishes the job."""
        ...
