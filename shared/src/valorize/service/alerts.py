"""Alerts as message-bus handlers: after a write commits, decide whether it deserves a
notification (valorize.domain.alerts) and hand it to the notify task.

Cheap when nothing fires: each write costs one Redis read of the user's alert profile
(adapters/alert_profiles.py); Firestore is read only when the profile says a threshold or an
envelope is involved. A handler never fails the write: the bus logs its errors, and a lost
alert is the worst outcome. Repeats are harmless: notification ids are deterministic (per
account per day, per transaction, per envelope per month), and the notify task stores an id
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from valorize.domain import alerts
from valorize.domain.alerts import AlertProfile
from valorize.domain.budget import Budget, Envelope
from valorize.domain.events import (
    AccountChanged,
    AccountDeleted,
    BalancesChanged,
    BudgetChanged,
    CategoryChanged,
    Event,
    TransactionCreated,
    TransactionUpdated,
)
from valorize.domain.model import Account
from valorize.domain.notifications import NotificationPreferences
from valorize.service.messagebus import MessageBus
from valorize.service.ports import AlertProfiles, BudgetStore, Clock, Notifier, UserStore

log = logging.getLogger(__name__)

# An envelope and what it has available in a month; None when it no longer exists.
EnvelopeReader = Callable[[str, str, str, str], tuple[Budget, Envelope] | None]


class AccountsReader(Protocol):
    def get_accounts(self, user_id: str, account_ids: list[str]) -> dict[str, Account]: ...


def build_profile(
    users: UserStore,
    budgets: BudgetStore,
    preferences: Callable[[str], NotificationPreferences],
    accounts: Callable[[str], list[Account]],
    user_id: str,
) -> AlertProfile:
    """The profile from Firestore: the user, their preferences, envelopes and accounts."""
    user = users.get_user(user_id)
    if user is None:
        return AlertProfile()
    return AlertProfile(
        currency=user.preferred_currency,
        large_transaction_threshold=preferences(user_id).large_transaction_threshold,
        low_balance={
            a.id: a.low_balance_threshold
            for a in accounts(user_id)
            if a.low_balance_threshold is not None
        },
        budgeted=frozenset(b.category_id for b in budgets.list_budgets(user_id)),
    )


class Alerts:
    def __init__(
        self,
        profiles: AlertProfiles,
        accounts: AccountsReader,
        envelope: EnvelopeReader,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self.profiles = profiles
        self.accounts = accounts
        self.envelope = envelope
        self.notifier = notifier
        self.clock = clock

    def subscribe(self, bus: MessageBus) -> None:
        bus.subscribe(TransactionCreated, self.on_transaction)
        bus.subscribe(TransactionUpdated, self.on_transaction)
        bus.subscribe(BalancesChanged, self.on_balances)
        # What a profile is built from changed: the next write rebuilds it.
        for source in (AccountChanged, AccountDeleted, BudgetChanged, CategoryChanged):
            bus.subscribe(source, self.on_profile_source)

    def on_profile_source(self, event: Event) -> None:
        self.profiles.forget(event.user_id)

    def on_transaction(self, event: Event) -> None:
        if not isinstance(event, TransactionCreated | TransactionUpdated):
            return
        txn = event.transaction
        if isinstance(event, TransactionUpdated) and not alerts.spending_changed(
            event.previous, txn
        ):
            return
        if txn.is_transfer:
            return
        uid = event.user_id
        profile = self.profiles.get(uid)
        if profile.watches_nothing:
            return
        threshold = profile.large_transaction_threshold
        if (
            isinstance(event, TransactionCreated)
            and threshold is not None
            and alerts.is_large(txn, threshold, profile.currency)
        ):
            self.notifier.notify(alerts.large_transaction(uid, txn, threshold))
        month = txn.date.isoformat()[:7]
        for budget_id in alerts.overspent_candidates(txn, profile):
            assert profile.currency is not None
            found = self.envelope(uid, budget_id, month, profile.currency)
            if found is None:
                continue
            budget, envelope = found
            if envelope.available < 0:
                self.notifier.notify(
                    alerts.envelope_overspent(
                        uid, budget.id, budget.name, month, envelope.available, profile.currency
                    )
                )

    def on_balances(self, event: Event) -> None:
        if not isinstance(event, BalancesChanged):
            return
        uid = event.user_id
        thresholds = self.profiles.get(uid).low_balance
        watched = [a for a in event.account_ids if a in thresholds]
        # The balance the write left, when it said (a create's commit does): only a crossing
        # needs the account (its notification names it). Otherwise read after the commit:
        # balances move by increments, only a read knows them.
        after = {a: money.amount for a in watched if (money := event.balance(a)) is not None}
        wanted = [
            a
            for a in watched
            if a not in after or alerts.crossed_below(thresholds[a], after[a], event.delta(a))
        ]
        if not wanted:
            return
        today = self.clock.now().date()
        for account in self.accounts.get_accounts(uid, wanted).values():
            if account.id in after:
                # As the write left it, not as a later write may have moved it since.
                account = replace(account, balance=after[account.id])
            threshold = account.low_balance_threshold
            if threshold is not None and alerts.crossed_below(
                threshold, account.balance, event.delta(account.id)
            ):
                self.notifier.notify(alerts.low_balance(uid, account, threshold, today))
