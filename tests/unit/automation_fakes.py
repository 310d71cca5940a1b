"""Fakes for the automation services: a task queue and a notifier that record what they were
given, and a world with rules, recurrences and the automate service wired to the fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.unit.conftest import OTHER, USER, World, make_world
from valorize.adapters.cache import NoCache
from valorize.domain.events import Event
from valorize.domain.model import ApiToken, User
from valorize.domain.notifications import NotificationRequest
from valorize.service.automations import AutomationService
from valorize.service.dashboard import DashboardService
from valorize.service.recurrences import RecurrenceService
from valorize.service.rules import RuleService
from valorize.service.transactions import TransactionService


@dataclass
class Task:
    queue: str
    function: str
    path: str
    payload: dict[str, Any]
    name: str | None


@dataclass
class RecordingQueue:
    """The TaskQueue port: keeps tasks; like Cloud Tasks, refuses a name it has seen."""

    tasks: list[Task] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def enqueue(
        self,
        queue: str,
        function: str,
        path: str,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None:
        if name is not None:
            if name in self.names:
                return  # AlreadyExists: the adapter logs and carries on
            self.names.add(name)
        self.tasks.append(Task(queue, function, path, payload, name))

    def take(self, path: str | None = None) -> list[Task]:
        """Remove and return the pending tasks (for `path` only, when given)."""
        taken = [t for t in self.tasks if path is None or t.path == path]
        self.tasks = [t for t in self.tasks if t not in taken]
        return taken


@dataclass
class RecordingNotifier:
    sent: list[NotificationRequest] = field(default_factory=list)
    fail: bool = False

    def notify(self, request: NotificationRequest) -> None:
        if self.fail:
            raise LookupError("no URL configured for function 'notify'")
        self.sent.append(request)


@dataclass
class RecordingBus:
    events: list[Event] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.events.append(event)


@dataclass
class AutoWorld:
    base: World
    queue: RecordingQueue
    notifier: RecordingNotifier
    bus: RecordingBus
    rules: RuleService
    recurrences: RecurrenceService
    transactions: TransactionService
    dashboard: DashboardService
    automations: AutomationService


def make_auto_world(page_size: int = 500) -> AutoWorld:
    base = make_world()
    now = base.clock.now()
    for uid in (USER, OTHER):
        user = User(uid, f"{uid}@example.com", uid, "BRL", "pt-BR", now)
        base.store.create_user(user, "h", [], ApiToken(f"tok-{uid}", uid, "t", now), "s")
    queue, notifier, bus = RecordingQueue(), RecordingNotifier(), RecordingBus()
    holder: dict[str, Any] = {}
    rules = RuleService(
        base.store,
        base.clock,
        base.ids,
        queue=queue,
        apply_rules=lambda u, t, rs: holder["txns"].apply_rules(u, t, rs),
    )
    transactions = TransactionService(base.store, base.clock, base.ids, bus, rules=rules.ruleset)
    holder["txns"] = transactions
    # The shortcuts of World (world.txn...) go through the rule-aware service too.
    base.transactions = transactions
    dashboard = DashboardService(base.store, base.clock, NoCache())
    automations = AutomationService(
        base.store,
        base.clock,
        queue,
        notifier,
        rules=rules.ruleset,
        month_summary=dashboard.summary,
        bus=bus,
        page_size=page_size,
    )
    return AutoWorld(
        base=base,
        queue=queue,
        notifier=notifier,
        bus=bus,
        rules=rules,
        recurrences=RecurrenceService(base.store, base.clock, base.ids),
        transactions=transactions,
        dashboard=dashboard,
        automations=automations,
    )
