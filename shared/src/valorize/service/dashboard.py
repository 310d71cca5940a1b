"""The dashboard's queries (the read side of CQRS): each answer comes from a handful of
documents (the accounts, the month read models of the window, the categories) whatever the
history length. The HTTP edge caches each answer (routes declared `cached`).

Each query returns a view: a frozen dataclass of domain values (amounts are `Money` in minor
units), which the entry point renders through the route's response schema
(entrypoints/dashboard_schemas.py: the same field names). `income` and `expense` are magnitudes
(never negative) and `net` is signed. Each answer is in the user's preferred currency, with
every other currency the user holds in `other_currencies` (there is no conversion, and nothing
is silently dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Self, TypeVar

from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.model import Account, AccountType, Category, Color, Transaction
from valorize.domain.money import Money
from valorize.domain.readmodel import UNCATEGORIZED
from valorize.service.ports import (
    AccountStore,
    CategoryStore,
    Clock,
    Ledger,
    TransactionFilter,
    UserStore,
)
from valorize.service.ports.pages import walk

MAX_MONTHS = 24

V = TypeVar("V")


def parse_month(value: str, field: str = "month") -> str:
    try:
        year, month = value.split("-")
        date(int(year), int(month), 1)
    except ValueError:
        raise ValidationFailed.on(field, "use YYYY-MM, e.g. 2026-11") from None
    if len(year) != 4 or len(month) != 2:
        raise ValidationFailed.on(field, "use YYYY-MM, e.g. 2026-11")
    return value


def shift(month: str, by: int) -> str:
    """Month arithmetic on "YYYY-MM" (no day, so no month-end surprises)."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def window(end: str, months: int) -> list[str]:
    return [shift(end, -k) for k in range(months - 1, -1, -1)]


def _flows(node: dict[str, Any] | None) -> tuple[int, int]:
    node = node or {}
    return int(node.get("income", 0)), int(node.get("expense", 0))


def _share(amount: int, total: int) -> float:
    """Percent of `total`, 2 decimals (0 of nothing)."""
    return round(amount * 100 / total, 2) if total else 0.0


def _first_with_others(view: Callable[..., V], rows: list[Any], **rest: Any) -> V:
    """`view` of the first row (the preferred currency's) with the rest as `other_currencies`."""
    first = {f.name: getattr(rows[0], f.name) for f in fields(rows[0])}
    return view(**first, other_currencies=tuple(rows[1:]), **rest)


# --- views ------------------------------------------------------------------------------------
# A view whose answer lists the preferred currency's figures at the top level and the others
# in `other_currencies` extends the per-currency view with that list.


@dataclass(frozen=True)
class Totals:
    income: Money
    expense: Money
    net: Money

    @classmethod
    def of(cls, currency: str, income: int, expense: int, /, **rest: Any) -> Self:
        """The view with these flows in `currency` and its other fields `rest`."""
        return cls(
            income=Money(income, currency),
            expense=Money(expense, currency),
            net=Money(income - expense, currency),
            **rest,
        )


@dataclass(frozen=True)
class CurrencySummary(Totals):
    currency: str
    total_balance: Money


@dataclass(frozen=True)
class Summary(CurrencySummary):
    month: str
    other_currencies: tuple[CurrencySummary, ...]


@dataclass(frozen=True)
class TrendPoint(Totals):
    month: str


@dataclass(frozen=True)
class CurrencyTrend:
    currency: str
    months: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class Trend(CurrencyTrend):
    other_currencies: tuple[CurrencyTrend, ...]


@dataclass(frozen=True)
class CategoryShare:
    category_id: str | None
    name: str
    color: Color | None
    amount: Money
    share: float


@dataclass(frozen=True)
class OtherShare:
    amount: Money
    share: float
    count: int


@dataclass(frozen=True)
class CurrencySpending:
    currency: str
    total: Money
    categories: tuple[CategoryShare, ...]
    other: OtherShare


@dataclass(frozen=True)
class Spending(CurrencySpending):
    month: str
    other_currencies: tuple[CurrencySpending, ...]


@dataclass(frozen=True)
class AccountRow:
    id: str
    name: str
    type: AccountType
    currency: str
    balance: Money
    month_income: Money
    month_expense: Money
    month_transfers_in: Money
    month_transfers_out: Money


@dataclass(frozen=True)
class Accounts:
    month: str
    accounts: tuple[AccountRow, ...]


@dataclass(frozen=True)
class InsightAccount(Totals):
    account_id: str
    account_name: str


@dataclass(frozen=True)
class CurrencyInsights(Totals):
    currency: str
    monthly: tuple[TrendPoint, ...]
    accounts: tuple[InsightAccount, ...]


@dataclass(frozen=True)
class Insights(CurrencyInsights):
    category: Category
    months: tuple[str, ...]
    other_currencies: tuple[CurrencyInsights, ...]


class DashboardService:
    def __init__(
        self,
        user_store: UserStore,
        account_store: AccountStore,
        category_store: CategoryStore,
        ledger: Ledger,
        clock: Clock,
    ) -> None:
        self.user_store = user_store
        self.account_store = account_store
        self.category_store = category_store
        self.ledger = ledger
        self.clock = clock

    # --- helpers ------------------------------------------------------------------------------

    def this_month(self) -> str:
        return self.clock.now().date().isoformat()[:7]

    def _preferred(self, user_id: str) -> str:
        user = self.user_store.get_user(user_id)
        if user is None:
            raise NotFound("user not found")
        return user.preferred_currency

    def _accounts(self, user_id: str) -> list[Account]:
        return list(walk(lambda c: self.account_store.list_accounts(user_id, 200, c)))

    def _categories(self, user_id: str) -> dict[str, Category]:
        cats = list(walk(lambda c: self.category_store.list_categories(user_id, 200, c)))
        return {c.id: c for c in cats}

    @staticmethod
    def _currencies(preferred: str, seen: Iterable[str]) -> list[str]:
        return [preferred, *sorted(set(seen) - {preferred})]

    # --- queries ------------------------------------------------------------------------------

    def summary(self, user_id: str, month: str | None) -> Summary:
        month = parse_month(month) if month else self.this_month()
        preferred = self._preferred(user_id)
        balances: dict[str, int] = {}
        for a in self._accounts(user_id):
            balances[a.currency] = balances.get(a.currency, 0) + a.balance
        model = self.ledger.get_months(user_id, [month]).get(month, {})
        rows = []
        for cur in self._currencies(preferred, [*balances, *model]):
            income, expense = _flows(model.get(cur))
            rows.append(
                CurrencySummary.of(
                    cur,
                    income,
                    expense,
                    currency=cur,
                    total_balance=Money(balances.get(cur, 0), cur),
                )
            )
        return _first_with_others(Summary, rows, month=month)

    def trend(self, user_id: str, end: str | None, months: int) -> Trend:
        end = parse_month(end, "end") if end else self.this_month()
        if not 1 <= months <= MAX_MONTHS:
            raise ValidationFailed.on("months", f"between 1 and {MAX_MONTHS}")
        preferred = self._preferred(user_id)
        span = window(end, months)
        models = self.ledger.get_months(user_id, span)
        seen = {cur for m in models.values() for cur in m}
        series = []
        for cur in self._currencies(preferred, seen):
            points = []
            for month in span:
                income, expense = _flows(models.get(month, {}).get(cur))
                points.append(TrendPoint.of(cur, income, expense, month=month))
            series.append(CurrencyTrend(currency=cur, months=tuple(points)))
        return _first_with_others(Trend, series)

    def spending(self, user_id: str, month: str | None, top: int) -> Spending:
        month = parse_month(month) if month else self.this_month()
        preferred = self._preferred(user_id)
        model = self.ledger.get_months(user_id, [month]).get(month, {})
        categories = self._categories(user_id)
        out = []
        for cur in self._currencies(preferred, model):
            per = {
                cid: int(node.get("expense", 0))
                for cid, node in (model.get(cur, {}).get("categories") or {}).items()
            }
            per = {cid: v for cid, v in per.items() if v > 0}
            total = sum(per.values())
            ranked = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))
            items = []
            for cid, amount in ranked[:top]:
                cat = categories.get(cid)
                items.append(
                    CategoryShare(
                        category_id=None if cid == UNCATEGORIZED else cid,
                        name=cat.name
                        if cat
                        else ("Uncategorized" if cid == UNCATEGORIZED else "Deleted category"),
                        color=cat.color if cat else None,
                        amount=Money(amount, cur),
                        share=_share(amount, total),
                    )
                )
            rest = sum(v for _, v in ranked[top:])
            other = OtherShare(Money(rest, cur), _share(rest, total), max(len(ranked) - top, 0))
            out.append(CurrencySpending(cur, Money(total, cur), tuple(items), other))
        return _first_with_others(Spending, out, month=month)

    def recent(self, user_id: str, limit: int) -> list[Transaction]:
        page = self.ledger.list_transactions(user_id, TransactionFilter(), limit, None)
        return page.items

    def accounts(self, user_id: str, month: str | None) -> Accounts:
        month = parse_month(month) if month else self.this_month()
        model = self.ledger.get_months(user_id, [month]).get(month, {})
        rows = []
        for a in self._accounts(user_id):
            node = (model.get(a.currency, {}).get("accounts") or {}).get(a.id, {})
            income, expense = _flows(node)
            cur = a.currency
            rows.append(
                AccountRow(
                    id=a.id,
                    name=a.name,
                    type=a.type,
                    currency=cur,
                    balance=Money(a.balance, cur),
                    month_income=Money(income, cur),
                    month_expense=Money(expense, cur),
                    month_transfers_in=Money(int(node.get("transfers_in", 0)), cur),
                    month_transfers_out=Money(int(node.get("transfers_out", 0)), cur),
                )
            )
        return Accounts(month, tuple(rows))

    def category_insights(
        self, user_id: str, category_id: str, end: str | None, months: int
    ) -> Insights:
        end = parse_month(end, "end") if end else self.this_month()
        if not 1 <= months <= MAX_MONTHS:
            raise ValidationFailed.on("months", f"between 1 and {MAX_MONTHS}")
        category = self.category_store.get_category(user_id, category_id)
        if category is None:
            raise NotFound("category not found")
        preferred = self._preferred(user_id)
        span = window(end, months)
        models = self.ledger.get_months(user_id, span)
        names = {a.id: a.name for a in self._accounts(user_id)}
        seen = {
            cur
            for m in models.values()
            for cur, node in m.items()
            if category_id in (node.get("categories") or {})
        }
        out = []
        for cur in self._currencies(preferred, seen):
            monthly: list[TrendPoint] = []
            by_account: dict[str, tuple[int, int]] = {}
            total_in = total_out = 0
            for month in span:
                node = ((models.get(month, {}).get(cur) or {}).get("categories") or {}).get(
                    category_id, {}
                )
                income, expense = _flows(node)
                total_in, total_out = total_in + income, total_out + expense
                monthly.append(TrendPoint.of(cur, income, expense, month=month))
                for aid, flows in (node.get("accounts") or {}).items():
                    i, e = _flows(flows)
                    prev = by_account.get(aid, (0, 0))
                    by_account[aid] = (prev[0] + i, prev[1] + e)
            accounts = tuple(
                InsightAccount.of(
                    cur, i, e, account_id=aid, account_name=names.get(aid, "Deleted account")
                )
                for aid, (i, e) in sorted(by_account.items(), key=lambda kv: -sum(kv[1]))
                if i or e
            )
            out.append(
                CurrencyInsights.of(
                    cur,
                    total_in,
                    total_out,
                    currency=cur,
                    monthly=tuple(monthly),
                    accounts=accounts,
                )
            )
        return _first_with_others(Insights, out, category=category, months=tuple(span))
