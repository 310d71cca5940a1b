"""Query parameters and answers of the dashboard function (documented in OpenAPI; the e2e
tests validate every answer against these models). An answer renders the view of the same
name in service/dashboard.py by its attributes (`Out.of`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from valorize.domain.model import Transaction
from valorize.entrypoints.schemas import MoneyOut, Out, TransactionOut
from valorize.service.requests import Month

Months = Annotated[int, Field(ge=1, le=24, description="How many months, at most 24")]


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonthQuery(Query):
    month: Month | None = Field(default=None, description="YYYY-MM; default this month (UTC)")


class TrendQuery(Query):
    end: Month | None = Field(default=None, description="Last month, YYYY-MM; default this month")
    months: Months = 12


class SpendingQuery(MonthQuery):
    top: Annotated[int, Field(ge=1, le=20)] = Field(
        default=5, description="Categories listed; the rest is summed in `other`"
    )


class RecentQuery(Query):
    limit: Annotated[int, Field(ge=1, le=50)] = 10


class InsightsQuery(TrendQuery):
    pass


class Totals(Out):
    income: MoneyOut = Field(description="Money in (a magnitude)")
    expense: MoneyOut = Field(description="Money out (a magnitude)")
    net: MoneyOut = Field(description="income - expense")


class CurrencySummary(Totals):
    currency: str
    total_balance: MoneyOut


class SummaryOut(CurrencySummary):
    month: str
    other_currencies: list[CurrencySummary]


class TrendPoint(Totals):
    month: str


class CurrencyTrend(Out):
    currency: str
    months: list[TrendPoint] = Field(description="Oldest first; empty months are zeros")


class TrendOut(CurrencyTrend):
    other_currencies: list[CurrencyTrend]


class CategoryShare(Out):
    category_id: str | None = Field(description="null for uncategorized spending")
    name: str
    color: str | None
    amount: MoneyOut
    share: float = Field(description="Percent of the month's spending, 2 decimals")


class OtherShare(Out):
    amount: MoneyOut
    share: float
    count: int = Field(description="How many categories are folded into `other`")


class CurrencySpending(Out):
    currency: str
    total: MoneyOut
    categories: list[CategoryShare]
    other: OtherShare


class SpendingOut(CurrencySpending):
    month: str
    other_currencies: list[CurrencySpending]


class AccountRow(Out):
    id: str
    name: str
    type: str
    currency: str
    balance: MoneyOut
    month_income: MoneyOut
    month_expense: MoneyOut
    month_transfers_in: MoneyOut
    month_transfers_out: MoneyOut


class AccountsOut(Out):
    month: str
    accounts: list[AccountRow]


class RecentOut(BaseModel):
    data: list[TransactionOut]

    @classmethod
    def of(cls, transactions: list[Transaction]) -> RecentOut:
        return cls(data=[TransactionOut.of(t) for t in transactions])


class InsightCategory(Out):
    id: str
    name: str
    color: str
    type: str


class InsightAccount(Totals):
    account_id: str
    account_name: str


class CurrencyInsights(Totals):
    currency: str
    monthly: list[TrendPoint]
    accounts: list[InsightAccount]


class InsightsOut(CurrencyInsights):
    category: InsightCategory
    months: list[str]
    other_currencies: list[CurrencyInsights]
