"""The AccountStore port in memory (adapters/firestore/accounts.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from tests.fakes.memory import AlreadyExists, Memory
from valorize.domain import ids
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.limits import LedgerReach, Reach
from valorize.domain.model import Account, AccountDeletion, DeletionState
from valorize.service.ports import IdempotencyRecord, PageResult


class InMemoryAccounts:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None:
        self.memory.check_idem(user_id, idem)
        space = self.memory.space(user_id)
        if account.id in space.accounts:
            raise AlreadyExists(f"accounts/{account.id}")
        space.accounts[account.id] = account
        self.memory.save_idem(user_id, idem)
        self.memory.writes += 1

    def _visible(self, user_id: str) -> dict[str, Account]:
        """The accounts, without those being deleted (hidden at once, like `deleting`)."""
        space = self.memory.space(user_id)
        return {i: a for i, a in space.accounts.items() if i not in space.account_deletions}

    def get_account(self, user_id: str, account_id: str) -> Account | None:
        return self._visible(user_id).get(account_id)

    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
        accounts = self._visible(user_id)
        return {i: accounts[i] for i in dict.fromkeys(account_ids) if i in accounts}

    def list_accounts(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        rows = sorted(self._visible(user_id).values(), key=lambda a: a.id)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            rows = [a for a in rows if a.id > after]
        page = rows[: limit + 1]
        nxt = encode_cursor(page[limit - 1].id) if len(page) > limit else None
        return PageResult(page[:limit], nxt)

    def update_account(
        self, user_id: str, account_id: str, mutate: Callable[[Account], Account]
    ) -> Account:
        accounts = self.memory.space(user_id).accounts
        old = self.get_account(user_id, account_id)
        if old is None:
            raise NotFound("account not found")
        new = mutate(old)
        moved = LedgerReach({old.id: Reach.of(new.balance - old.balance)})
        self.memory.check_limits(user_id, moved, "opening_balance")
        # The adapter writes every field but the counter, and the balance as a delta.
        accounts[account_id] = replace(
            new,
            id=account_id,
            transaction_count=old.transaction_count,
            balance=old.balance + (new.balance - old.balance),
        )
        self.memory.writes += 1
        return new

    # --- deletion, a page at a time -------------------------------------------------------

    def hide_account(
        self, user_id: str, account_id: str, now: datetime
    ) -> tuple[AccountDeletion, bool] | None:
        space = self.memory.space(user_id)
        recorded = space.account_deletions.get(account_id)
        if recorded is not None:
            return recorded, False
        account = space.accounts.get(account_id)
        if account is None:
            return None
        deletion = AccountDeletion(
            account_id=account_id,
            state=DeletionState.RUNNING,
            total=account.transaction_count,
            deleted=0,
            started_at=now,
            updated_at=now,
        )
        space.account_deletions[account_id] = deletion
        self.memory.writes += 1
        return deletion, True

    def get_deletion(self, user_id: str, account_id: str) -> AccountDeletion | None:
        return self.memory.space(user_id).account_deletions.get(account_id)

    def delete_account_page(
        self, user_id: str, account_id: str, limit: int, now: datetime
    ) -> AccountDeletion | None:
        space = self.memory.space(user_id)
        deletion = space.account_deletions.get(account_id)
        if deletion is None or deletion.state is DeletionState.DONE:
            return deletion
        # Firestore's query order for an equality filter is by document id.
        victims = sorted(
            (t for t in space.transactions.values() if t.account_id == account_id),
            key=lambda t: t.id,
        )[:limit]
        if not victims:
            space.accounts.pop(account_id, None)
            deletion = replace(deletion, state=DeletionState.DONE, updated_at=now, finished_at=now)
        else:
            # The other side of a transfer stays in its account, still a transfer, unlinked.
            unlinked = [
                replace(cp, counterpart_id=None, counterpart_account_id=None)
                for t in victims
                if t.counterpart_id
                and t.counterpart_account_id != account_id
                and (cp := space.transactions.get(t.counterpart_id)) is not None
            ]
            stale = [space.transactions[t.id] for t in unlinked]
            self.memory.post(
                user_id,
                [*victims, *stale],
                unlinked,
                missing="account not found",
                check_limits=False,
                balances=False,
            )
            deletion = replace(deletion, deleted=deletion.deleted + len(victims), updated_at=now)
        space.account_deletions[account_id] = deletion
        self.memory.writes += 1
        return deletion

    def advance_deletion(
        self, user_id: str, account_id: str, step: int, now: datetime
    ) -> AccountDeletion | None:
        space = self.memory.space(user_id)
        deletion = space.account_deletions.get(account_id)
        if deletion is None or deletion.state is DeletionState.DONE or deletion.step != step:
            return deletion
        deletion = replace(deletion, step=step + 1, updated_at=now)
        space.account_deletions[account_id] = deletion
        self.memory.writes += 1
        return deletion
