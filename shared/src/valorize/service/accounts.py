"""Accounts: CRUD, opening balance, guarded deletion.

Deleting an account with transactions is work in proportion to them (33,333 took 227 s in one
request, beyond the function's 60 s timeout), so it runs like a large import commit: the
account is hidden at once (gone from lists, refusing new transactions) and the DELETE answers
202 with the deletion's progress (`GET /api/accounts/{id}/deletion`); a chain of Cloud Tasks
on the accounts function deletes its transactions a page at a time, each delivery for at most
`delete_budget` seconds, checkpointing in Firestore with every page, then enqueuing the next
step. When none are left, the account goes and AccountDeleted is published."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from valorize.domain import ceilings
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.events import AccountChanged, AccountDeleted, AccountDeleting
from valorize.domain.limits import check_ceiling
from valorize.domain.model import Account, AccountDeletion, DeletionState
from valorize.service.ports import (
    Clock,
    EventBus,
    IdempotencyMark,
    Ids,
    NullBus,
    PageResult,
    TaskQueue,
)
from valorize.service.ports.accounts import AccountStore
from valorize.service.requests import CreateAccount, UpdateAccount

log = logging.getLogger(__name__)

# The deletion tasks: on the accounts function's own queue (functions/registry.py).
DELETE_QUEUE = "accounts"
DELETE_FUNCTION = "accounts"
DELETE_PATH = "/api/accounts/tasks/delete"
# Transactions deleted per write (each may also unlink a transfer's other side, and the write
# carries the read-model increments: within Firestore's 500 writes per batch).
DELETE_PAGE = 200
# How long one delivery deletes before it hands on: well under the function's 60 s timeout
# (a page of 200 took about 1.4 s on the emulator).
DELETE_BUDGET_SECONDS = 20.0
# A deletion asked for again that made no progress this long has lost its task (Cloud Tasks
# gave up after its retries): its chain is restarted.
DELETE_STALLED = timedelta(minutes=5)


class AccountService:
    def __init__(
        self,
        account_store: AccountStore,
        clock: Clock,
        ids: Ids,
        bus: EventBus | None = None,
        *,
        queue: TaskQueue | None = None,
        max_accounts: int = ceilings.MAX_ACCOUNTS,
        delete_page: int = DELETE_PAGE,
        delete_budget: float = DELETE_BUDGET_SECONDS,
    ) -> None:
        """`queue` runs the deletion of an account with transactions; `delete_page`: how
        many a write deletes, `delete_budget`: seconds one task delivery deletes for."""
        self.max_accounts = max_accounts
        self.queue = queue
        self.delete_page = min(delete_page, DELETE_PAGE)
        self.delete_budget = delete_budget
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

    # --- deletion: hidden at once, then a chain of tasks deletes it a page at a time --------

    def delete(self, user_id: str, account_id: str, confirm: bool) -> AccountDeletion | None:
        """Hide the account and delete it with its transactions. None: it held none and is
        gone already (204); else its deletion, which continues in tasks (202). Asked again
        while it runs: the same deletion, no second run (a run that stalled is resumed)."""
        running = self.account_store.get_deletion(user_id, account_id)
        if running is not None and running.state is DeletionState.RUNNING:
            return self._resume_if_stalled(user_id, running)
        # None: unknown, or hidden by a delete that did not record its progress (the
        # synchronous one this replaced, interrupted): hide_account tells them apart.
        account = self.account_store.get_account(user_id, account_id)
        if account is not None and account.transaction_count and not confirm:
            raise Conflict(
                f"the account has {account.transaction_count} transactions; "
                "repeat with ?confirm=true to delete it and them"
            )
        hidden = self.account_store.hide_account(user_id, account_id, self.clock.now())
        if hidden is None or hidden[0].state is DeletionState.DONE:
            raise NotFound("account not found")  # or a concurrent delete finished first
        deletion, started = hidden
        if not started:
            return self._resume_if_stalled(user_id, deletion)
        if account is not None and not account.transaction_count:
            # Nothing to delete but what raced in since it was read: one page, inline.
            deletion = self._page(user_id, account_id) or deletion
            if deletion.state is DeletionState.DONE:
                return None
        self._progressed(user_id, deletion)
        self._enqueue_deletion(user_id, account_id, deletion.step)
        return deletion

    def deletion(self, user_id: str, account_id: str) -> AccountDeletion:
        deletion = self.account_store.get_deletion(user_id, account_id)
        if deletion is None:
            raise NotFound("no deletion of this account")
        return deletion

    def run_deletion(self, user_id: str, account_id: str, step: int) -> AccountDeletion | None:
        """One task delivery: delete pages for at most `delete_budget` seconds, then hand the
        rest to the next step's task. Safe to deliver more than once: a delivery of a step
        the deletion moved past does no work (it re-enqueues the next step, whose name makes
        that idempotent, in case the first enqueue was lost). None: no such deletion."""
        deletion = self.account_store.get_deletion(user_id, account_id)
        if deletion is None or deletion.state is DeletionState.DONE:
            return deletion
        if step < deletion.step:
            self._enqueue_deletion(user_id, account_id, deletion.step)
            return deletion
        deadline = self.clock.now() + timedelta(seconds=self.delete_budget)
        while True:
            page = self._page(user_id, account_id)
            if page is None or page.state is DeletionState.DONE:
                return page
            deletion = page
            if self.clock.now() >= deadline:
                break
        self._progressed(user_id, deletion)
        moved = self.account_store.advance_deletion(user_id, account_id, step, self.clock.now())
        if moved is None or moved.state is DeletionState.DONE:
            return moved
        # Named by the step it moved to, by this delivery or a concurrent duplicate of it.
        self._enqueue_deletion(user_id, account_id, moved.step)
        return moved

    def _page(self, user_id: str, account_id: str) -> AccountDeletion | None:
        """One page deleted; when it finished the deletion, the account is announced gone."""
        deletion = self.account_store.delete_account_page(
            user_id, account_id, self.delete_page, self.clock.now()
        )
        if deletion is not None and deletion.state is DeletionState.DONE:
            # Twice when two deliveries race to the end: both handlers are idempotent.
            self.bus.publish(AccountDeleted(user_id, account_id))
        return deletion

    def _progressed(self, user_id: str, deletion: AccountDeletion) -> None:
        # Lists, balances and dashboards moved: caches and open dashboards must know.
        self.bus.publish(
            AccountDeleting(user_id, deletion.account_id, deletion.deleted, deletion.total)
        )

    def _resume_if_stalled(self, user_id: str, deletion: AccountDeletion) -> AccountDeletion:
        """A deletion asked for again: the same one. Its step's task is queued again (its name
        makes that a no-op if it exists: this is for an enqueue that failed, Cloud Tasks
        unreachable at the first ask); its chain restarted at a new step when it made no
        progress for DELETE_STALLED (its task gave up after its retries, and Cloud Tasks
        keeps refusing that name for a while)."""
        now = self.clock.now()
        if now - deletion.updated_at < DELETE_STALLED:
            self._enqueue_deletion(user_id, deletion.account_id, deletion.step)
            return deletion
        log.warning(
            "account deletion %s stalled since %s: resumed",
            deletion.account_id,
            deletion.updated_at,
        )
        moved = self.account_store.advance_deletion(
            user_id, deletion.account_id, deletion.step, now
        )
        if moved is None:
            raise NotFound("account not found")
        if moved.state is DeletionState.RUNNING:
            self._enqueue_deletion(user_id, deletion.account_id, moved.step)
        return moved

    def _enqueue_deletion(self, user_id: str, account_id: str, step: int) -> None:
        if self.queue is None:
            raise RuntimeError("AccountService needs a task queue to delete large accounts")
        self.queue.enqueue(
            DELETE_QUEUE,
            DELETE_FUNCTION,
            DELETE_PATH,
            {"user_id": user_id, "account_id": account_id, "step": step},
            name=f"account-delete-{account_id}-{step}",
        )
