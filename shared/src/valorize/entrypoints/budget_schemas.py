"""Answers of the budgets function (documented in OpenAPI, checked by the e2e tests). The month
answers render service/budgets.py's views (MonthSummary, Overview) by their attributes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from valorize.domain.budget import Budget
from valorize.entrypoints.schemas import MoneyOut, Out


class BudgetOut(BaseModel):
    id: str
    category_id: str
    name: str
    currency: str
    allocations: dict[str, MoneyOut] = Field(description="Month (YYYY-MM) -> amount assigned")
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, b: Budget) -> BudgetOut:
        return cls(
            id=b.id,
            category_id=b.category_id,
            name=b.name,
            currency=b.currency,
            allocations={
                m: MoneyOut(amount=v, currency=b.currency) for m, v in sorted(b.allocations.items())
            },
            created_at=b.created_at,
            updated_at=b.updated_at,
        )


class BudgetList(BaseModel):
    data: list[BudgetOut]
    next_cursor: str | None = None

    @classmethod
    def of(cls, budgets: list[Budget]) -> BudgetList:
        return cls(data=[BudgetOut.of(b) for b in budgets], next_cursor=None)


class MoveOut(BaseModel):
    from_budget: BudgetOut = Field(alias="from")
    to_budget: BudgetOut = Field(alias="to")

    @classmethod
    def of(cls, moved: tuple[Budget, Budget]) -> MoveOut:
        source, target = moved
        return cls.model_validate({"from": BudgetOut.of(source), "to": BudgetOut.of(target)})


class MonthSummaryOut(Out):
    month: str
    currency: str
    has_income: bool
    is_inherited: bool = Field(description="The income comes from an earlier month")
    income_month: str | None
    income: MoneyOut | None
    assigned: MoneyOut
    unassigned: MoneyOut | None = Field(description="income - assigned; null without income")


class EnvelopeOut(Out):
    budget_id: str
    category_id: str
    name: str
    budgeted: MoneyOut
    spent: MoneyOut
    rollover: MoneyOut = Field(description="All earlier allocations - all earlier spending")
    available: MoneyOut = Field(description="rollover + budgeted - spent")
    overspent: bool


class OverviewOut(Out):
    month: str
    currency: str
    summary: MonthSummaryOut
    envelopes: list[EnvelopeOut]
