"""A world with rules, recurrences and the automate service, on fakes, and two users."""

from __future__ import annotations

from dataclasses import dataclass

from tests.fakes.system import RecordingBus
from tests.fakes.tasks import FakeNotifier, RecordingQueue
from tests.unit.conftest import OTHER, USER, World, make_world
from valorize.domain.model import ApiToken, User
from valorize.service.automations import AutomationService
from valorize.service.dashboard import DashboardService
from valorize.service.recurrences import RecurrenceService
from valorize.service.rules import RuleService
from valorize.service.transactions import TransactionService


@dataclass
class AutoWorld:
    base: World
    queue: RecordingQueue
    notifier: FakeNotifier
    bus: RecordingBus
    rules: RuleService
    recurrences: RecurrenceService
    transactions: TransactionService
    dashboard: DashboardService
    automations: AutomationService


def make_auto_world(page_size: int = 500) -> AutoWorld:
    bus = RecordingBus()
    base = make_world(bus=bus)
    s = base.services
    now = s.clock.now()
    for uid in (USER, OTHER):
        user = User(uid, f"{uid}@example.com", uid, "BRL", "pt-BR", now)
        s.user_store.create_user(user, "h", [], ApiToken(f"tok-{uid}", uid, "t", now), "s")
    s.automations.page_size = page_size
    return AutoWorld(
        base=base,
        queue=s.task_queue,
        notifier=s.notifier,
        bus=bus,
        rules=s.rules,
        recurrences=s.recurrences,
        transactions=s.transactions,
        dashboard=s.dashboard,
        automations=s.automations,
    )
