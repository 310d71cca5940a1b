"""Budget envelopes (one per category, keyed by it) and the monthly income."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from valorize.domain.budget import Budget


class BudgetStore(Protocol):
    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]:
        """Create it, or return the envelope the category already has: (budget, created)."""
        ...

    def get_budget(self, user_id: str, budget_id: str) -> Budget | None: ...
    def list_budgets(self, user_id: str) -> list[Budget]: ...
    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget:
        """NotFound when it is gone."""
        ...

    def delete_budget(self, user_id: str, budget_id: str) -> bool:
        """False when it was not there (of two racing deletes, one is True)."""
        ...

    def get_incomes(self, user_id: str) -> dict[str, int]:
        """Income per month ("YYYY-MM") where one was set."""
        ...

    def set_income(self, user_id: str, month: str, amount: int) -> None: ...
    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]:
        """Read every envelope and the incomes, let `mutate` decide, write what it returns,
        if nothing it read changed meanwhile (else read again): two allocations racing for
        the same income cannot both pass the cap. NotFound when one of `budget_ids` is
        gone."""
        ...
