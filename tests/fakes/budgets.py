"""The BudgetStore port in memory (adapters/firestore/budgets.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from tests.fakes.memory import Memory
from valorize.domain.budget import Budget
from valorize.domain.errors import NotFound


class InMemoryBudgets:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]:
        budgets = self.memory.space(user_id).budgets
        if budget.id in budgets:
            return budgets[budget.id], False
        budgets[budget.id] = budget
        self.memory.writes += 1
        return budget, True

    def get_budget(self, user_id: str, budget_id: str) -> Budget | None:
        return self.memory.space(user_id).budgets.get(budget_id)

    def list_budgets(self, user_id: str) -> list[Budget]:
        return list(self.memory.space(user_id).budgets.values())

    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget:
        budgets = self.memory.space(user_id).budgets
        if budget_id not in budgets:
            raise NotFound("budget not found")
        budgets[budget_id] = replace(budgets[budget_id], name=name, updated_at=now)
        return budgets[budget_id]

    def delete_budget(self, user_id: str, budget_id: str) -> bool:
        return self.memory.space(user_id).budgets.pop(budget_id, None) is not None

    def get_incomes(self, user_id: str) -> dict[str, int]:
        return dict(self.memory.space(user_id).incomes)

    def set_income(self, user_id: str, month: str, amount: int) -> None:
        self.memory.space(user_id).incomes[month] = amount

    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]:
        space = self.memory.space(user_id)
        for budget_id in budget_ids:
            if budget_id not in space.budgets:
                raise NotFound("budget not found")
        changed = mutate(dict(space.budgets), dict(space.incomes))
        for b in changed:
            space.budgets[b.id] = b
        return changed
