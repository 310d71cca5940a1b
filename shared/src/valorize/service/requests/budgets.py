"""Requests of the budgets API (strict, unknown fields refused)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from valorize.service.requests import (
    MONTH_PATTERN,
    CurrencyCode,
    Id,
    MinorUnits,
    Name,
    RequestModel,
)

Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN), Field(description="YYYY-MM")]


class MoneyIn(RequestModel):
    amount: MinorUnits = Field(description="Integer minor units")
    currency: CurrencyCode


class CreateBudget(RequestModel):
    category_id: Id
    name: Name | None = Field(default=None, description="Defaults to the category's name")


class RenameBudget(RequestModel):
    name: Name


class SetIncome(RequestModel):
    month: Month
    amount: MoneyIn = Field(description="Income to budget that month (>= 0)")


class Allocate(RequestModel):
    budget_id: Id
    month: Month
    amount: MoneyIn = Field(description="Replaces the envelope's amount for the month")


class MoveMoney(RequestModel):
    from_budget_id: Id
    to_budget_id: Id
    month: Month
    amount: MoneyIn = Field(description="Positive; not capped, the source may go negative")


class MonthQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    month: Month | None = Field(default=None, description="YYYY-MM; default this month (UTC)")
