"""Budgets: envelopes per category, monthly income, allocations, moves, and the month
overview. The arithmetic lives in valorize.domain.budget; spending comes from the dashboard
read models (this month's document, and all-time totals minus the months from this one on),
so no request scans the transaction history. The month's views (`MonthSummary`, `Overview`) are
frozen dataclasses of Money, rendered by the entry point through entrypoints/budget_schemas.py."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from valorize.domain.budget import Budget, Envelope, allocate, envelope, income_for, move
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.events import BudgetChanged
from valorize.domain.money import Money
from valorize.service.ports import (
    BudgetStore,
    CategoryStore,
    Clock,
    EventBus,
    Ledger,
    NullBus,
    UserStore,
)
from valorize.service.requests.budgets import (
    Allocate,
    CreateBudget,
    MoveMoney,
    RenameBudget,
    SetIncome,
)


def _expense_by_category(model: Mapping[str, Any], currency: str) -> dict[str, int]:
    categories = (model.get(currency) or {}).get("categories") or {}
    return {cid: int(node.get("expense", 0)) for cid, node in categories.items()}


@dataclass(frozen=True)
class MonthSummary:
    """A month's income to budget and what is assigned of it."""

    month: str
    currency: str
    # The month whose income applies: this one, or the latest earlier one that set it.
    income_month: str | None
    income: Money | None
    assigned: Money

    @property
    def has_income(self) -> bool:
        return self.income is not None

    @property
    def is_inherited(self) -> bool:
        return self.income_month is not None and self.income_month != self.month

    @property
    def unassigned(self) -> Money | None:
        return None if self.income is None else self.income - self.assigned


@dataclass(frozen=True)
class EnvelopeMonth:
    """One envelope's month in the overview."""

    budget_id: str
    category_id: str
    name: str
    budgeted: Money
    spent: Money
    rollover: Money
    available: Money

    @property
    def overspent(self) -> bool:
        return self.available.amount < 0

    @classmethod
    def of(cls, e: Envelope, currency: str) -> EnvelopeMonth:
        b = e.budget
        return cls(
            budget_id=b.id,
            category_id=b.category_id,
            name=b.name,
            budgeted=Money(e.budgeted, currency),
            spent=Money(e.spent, currency),
            rollover=Money(e.rollover, currency),
            available=Money(e.available, currency),
        )


@dataclass(frozen=True)
class Overview:
    month: str
    currency: str
    summary: MonthSummary
    envelopes: tuple[EnvelopeMonth, ...]


class BudgetService:
    def __init__(
        self,
        budget_store: BudgetStore,
        category_store: CategoryStore,
        user_store: UserStore,
        ledger: Ledger,
        clock: Clock,
        bus: EventBus | None = None,
    ) -> None:
        self.budget_store = budget_store
        self.category_store = category_store
        self.user_store = user_store
        self.ledger = ledger
        self.clock = clock
        self.bus: EventBus = bus or NullBus()

    def _currency(self, user_id: str) -> str:
        user = self.user_store.get_user(user_id)
        if user is None:
            raise NotFound("user not found")
        return user.preferred_currency

    def _changed(self, user_id: str, month: str | None = None) -> None:
        self.bus.publish(BudgetChanged(user_id, month))

    # --- envelopes ----------------------------------------------------------------------------

    def create(self, user_id: str, cmd: CreateBudget) -> tuple[Budget, bool]:
        """(budget, created): a category has one envelope; asking again returns it."""
        category = self.category_store.get_category(user_id, cmd.category_id)
        if category is None:
            raise ValidationFailed.on("category_id", "no such category")
        now = self.clock.now()
        wanted = Budget(
            id=category.id,
            category_id=category.id,
            name=cmd.name or category.name,
            currency=self._currency(user_id),
            created_at=now,
            updated_at=now,
        )
        budget, created = self.budget_store.add_budget(user_id, wanted)
        if created:
            self._changed(user_id)
        return budget, created

    def get(self, user_id: str, budget_id: str) -> Budget:
        budget = self.budget_store.get_budget(user_id, budget_id)
        if budget is None:
            raise NotFound("budget not found")
        return budget

    def list(self, user_id: str) -> list[Budget]:
        return sorted(self.budget_store.list_budgets(user_id), key=lambda b: b.name.casefold())

    def rename(self, user_id: str, budget_id: str, cmd: RenameBudget) -> Budget:
        budget = self.budget_store.rename_budget(user_id, budget_id, cmd.name, self.clock.now())
        self._changed(user_id)
        return budget

    def _this_month(self) -> str:
        return self.clock.now().date().isoformat()[:7]

    def delete(self, user_id: str, budget_id: str) -> None:
        if not self.budget_store.delete_budget(user_id, budget_id):
            raise NotFound("budget not found")
        self._changed(user_id)

    # --- money --------------------------------------------------------------------------------

    def set_income(self, user_id: str, cmd: SetIncome) -> MonthSummary:
        currency = self._currency(user_id)
        if cmd.amount.currency != currency:
            raise ValidationFailed.on(
                "amount.currency", f"budgets are in your preferred currency, {currency}"
            )
        if cmd.amount.amount < 0:
            raise ValidationFailed.on("amount.amount", "income cannot be negative")
        self.budget_store.set_income(user_id, cmd.month, cmd.amount.amount)
        self._changed(user_id, cmd.month)
        return self.month_summary(user_id, cmd.month)

    def allocate(self, user_id: str, cmd: Allocate) -> Budget:
        now = self.clock.now()
        amount = Money(cmd.amount.amount, cmd.amount.currency)

        def decide(budgets: dict[str, Budget], incomes: dict[str, int]) -> list[Budget]:
            target = budgets[cmd.budget_id]
            return [allocate(budgets.values(), incomes, target, cmd.month, amount, now)]

        (budget,) = self.budget_store.change_allocations(user_id, [cmd.budget_id], decide)
        self._changed(user_id, cmd.month)
        return budget

    def move(self, user_id: str, cmd: MoveMoney) -> tuple[Budget, Budget]:
        now = self.clock.now()
        amount = Money(cmd.amount.amount, cmd.amount.currency)

        def decide(budgets: dict[str, Budget], _incomes: dict[str, int]) -> list[Budget]:
            return list(
                move(budgets[cmd.from_budget_id], budgets[cmd.to_budget_id], cmd.month, amount, now)
            )

        if cmd.from_budget_id == cmd.to_budget_id:
            raise ValidationFailed.on("to_budget_id", "must differ from from_budget_id")
        source, target = self.budget_store.change_allocations(
            user_id, [cmd.from_budget_id, cmd.to_budget_id], decide
        )
        self._changed(user_id, cmd.month)
        return source, target

    # --- views --------------------------------------------------------------------------------

    def month_summary(self, user_id: str, month: str | None) -> MonthSummary:
        """A month's income and what is assigned of it (default: this month)."""
        month = month or self._this_month()
        currency = self._currency(user_id)
        budgets = self.budget_store.list_budgets(user_id)
        return self._summary(currency, month, budgets, self.budget_store.get_incomes(user_id))

    @staticmethod
    def _summary(
        currency: str, month: str, budgets: builtins.list[Budget], incomes: Mapping[str, int]
    ) -> MonthSummary:
        income = income_for(incomes, month)
        return MonthSummary(
            month=month,
            currency=currency,
            income_month=income[0] if income else None,
            income=Money(income[1], currency) if income else None,
            assigned=Money(sum(b.allocated(month) for b in budgets), currency),
        )

    def envelope(
        self, user_id: str, budget_id: str, month: str, currency: str
    ) -> tuple[Budget, Envelope] | None:
        """One envelope's month (what the overview shows for it), or None when it is gone.
        `currency`: the user's preferred one (the caller knows it; saves reading the user)."""
        budget = self.budget_store.get_budget(user_id, budget_id)
        if budget is None:
            return None
        later = self.ledger.get_months_from(user_id, month)
        cid = budget.category_id
        spent_now = _expense_by_category(later.get(month, {}), currency).get(cid, 0)
        spent_from_now = sum(
            _expense_by_category(model, currency).get(cid, 0) for model in later.values()
        )
        spent_all = _expense_by_category(self.ledger.get_totals(user_id), currency).get(cid, 0)
        return budget, envelope(budget, month, spent_now, spent_all - spent_from_now)

    def overview(self, user_id: str, month: str | None) -> Overview:
        """Every envelope's month and the month's summary (default: this month)."""
        month = month or self._this_month()
        currency = self._currency(user_id)
        budgets = self.list(user_id)
        later = self.ledger.get_months_from(user_id, month)
        totals = self.ledger.get_totals(user_id)
        spent_now = _expense_by_category(later.get(month, {}), currency)
        spent_all = _expense_by_category(totals, currency)
        spent_from_now: dict[str, int] = {}
        for model in later.values():
            for cid, value in _expense_by_category(model, currency).items():
                spent_from_now[cid] = spent_from_now.get(cid, 0) + value
        envelopes = []
        for b in budgets:
            before = spent_all.get(b.category_id, 0) - spent_from_now.get(b.category_id, 0)
            e = envelope(b, month, spent_now.get(b.category_id, 0), before)
            envelopes.append(EnvelopeMonth.of(e, currency))
        summary = self._summary(currency, month, budgets, self.budget_store.get_incomes(user_id))
        return Overview(month, currency, summary, tuple(envelopes))
