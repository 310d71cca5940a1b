"""Envelope budgeting, with the original's arithmetic (../shared/spec/ORIGINAL.md §3.4, §5.2):

- an allocation *replaces* the envelope's amount for the month (it does not add);
- the month's income caps allocations: remaining = income - (month's total - this envelope's
  current amount); asking for more than max(remaining, 0) is refused with that remaining.
  A month with no income of its own inherits the latest earlier month's; with none at all
  there is no cap;
- moving money between envelopes is not capped and may leave the source negative;
- rollover = all earlier allocations - all earlier spending (can be negative);
  available = rollover + budgeted - spent;
- spending is split-aware (a split counts under its own category) and in the budget's
  currency (the user's preferred one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from valorize.domain.errors import FieldError, ValidationFailed
from valorize.domain.money import Money


@dataclass(frozen=True)
class Budget:
    id: str
    category_id: str
    name: str
    currency: str
    created_at: datetime
    updated_at: datetime
    # month "YYYY-MM" -> allocated minor units (may be negative after moves)
    allocations: Mapping[str, int] = field(default_factory=dict)

    def allocated(self, month: str) -> int:
        return self.allocations.get(month, 0)

    def allocated_before(self, month: str) -> int:
        return sum(v for m, v in self.allocations.items() if m < month)

    def with_allocation(self, month: str, amount: int, now: datetime) -> Budget:
        return replace(self, allocations={**self.allocations, month: amount}, updated_at=now)


class AllocationLimitExceeded(ValidationFailed):
    def __init__(self, remaining: Money) -> None:
        super().__init__(
            f"that is more than the month's income left to assign ({remaining.amount} "
            f"{remaining.currency} remaining)",
        )
        self.remaining = remaining
        self.extensions = {"remaining": remaining.to_json()}
        self.errors = [FieldError("amount.amount", f"at most {remaining.amount} can be assigned")]


def income_for(incomes: Mapping[str, int], month: str) -> tuple[str, int] | None:
    """The month's income, or the latest earlier month's (inherited); None when none."""
    earlier = [m for m in incomes if m <= month]
    if not earlier:
        return None
    source = max(earlier)
    return source, incomes[source]


def check_currency(budget: Budget, amount: Money, field_name: str = "amount") -> None:
    if amount.currency != budget.currency:
        raise ValidationFailed.on(
            f"{field_name}.currency",
            f"the budget is in {budget.currency}; amounts in {amount.currency} cannot be assigned",
        )


def allocate(
    budgets: Iterable[Budget],
    incomes: Mapping[str, int],
    budget: Budget,
    month: str,
    amount: Money,
    now: datetime,
) -> Budget:
    """The envelope with its new amount, or AllocationLimitExceeded."""
    check_currency(budget, amount)
    income = income_for(incomes, month)
    if income is not None:
        total = sum(b.allocated(month) for b in budgets)
        remaining = income[1] - (total - budget.allocated(month))
        if amount.amount > max(remaining, 0):
            raise AllocationLimitExceeded(Money(max(remaining, 0), budget.currency))
    return budget.with_allocation(month, amount.amount, now)


def move(
    source: Budget, target: Budget, month: str, amount: Money, now: datetime
) -> tuple[Budget, Budget]:
    if source.id == target.id:
        raise ValidationFailed.on("to_budget_id", "must differ from from_budget_id")
    if amount.amount <= 0:
        raise ValidationFailed.on("amount.amount", "the amount to move must be greater than zero")
    check_currency(source, amount)
    check_currency(target, amount)
    return (
        source.with_allocation(month, source.allocated(month) - amount.amount, now),
        target.with_allocation(month, target.allocated(month) + amount.amount, now),
    )


@dataclass(frozen=True)
class Envelope:
    budget: Budget
    budgeted: int
    spent: int
    rollover: int

    @property
    def available(self) -> int:
        return self.rollover + self.budgeted - self.spent


def envelope(budget: Budget, month: str, spent: int, spent_before: int) -> Envelope:
    return Envelope(
        budget=budget,
        budgeted=budget.allocated(month),
        spent=spent,
        rollover=budget.allocated_before(month) - spent_before,
    )
