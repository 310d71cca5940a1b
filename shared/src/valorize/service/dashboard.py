"""The dashboard's queries (the read side of CQRS): each answer comes from a handful of
documents (the accounts, the month read models of the window, the categories) whatever the
history length. The HTTP edge caches each answer (routes declared `cached`).

Views return plain JSON-ready dicts. Amounts are Money objects `{"amount", "currency"}` in
minor units; `income` and `expense` are magnitudes (never negative) and `net` is signed. Each
answer is in the user's preferred currency, with every other currency the user holds in
`other_currencies` (there is no conversion, and nothing is silently dropped).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.model import Account, Category
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


def money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


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


def _totals(currency: str, income: int, expense: int) -> dict[str, Any]:
    return {
        "income": money(income, currency),
        "expense": money(expense, currency),
        "net": money(income - expense, currency),
    }


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

    def summary(self, user_id: str, month: str | None) -> dict[str, Any]:
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
                {
                    "currency": cur,
                    "total_balance": money(balances.get(cur, 0), cur),
                    **_totals(cur, income, expense),
                }
            )
        return {"month": month, **rows[0], "other_currencies": rows[1:]}

    def trend(self, user_id: str, end: str | None, months: int) -> dict[str, Any]:
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
                points.append({"month": month, **_totals(cur, income, expense)})
            series.append({"currency": cur, "months": points})
        return {**series[0], "other_currencies": series[1:]}

    def spending(self, user_id: str, month: str | None, top: int) -> dict[str, Any]:
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
                    {
                        "category_id": None if cid == UNCATEGORIZED else cid,
                        "name": cat.name
                        if cat
                        else ("Uncategorized" if cid == UNCATEGORIZED else "Deleted category"),
                        "color": cat.color.value if cat else None,
                        "amount": money(amount, cur),
                        "share": round(amount * 100 / total, 2) if total else 0.0,
                    }
                )
            rest = sum(v for _, v in ranked[top:])
            out.append(
                {
                    "currency": cur,
                    "total": money(total, cur),
                    "categories": items,
                    "other": {
                        "amount": money(rest, cur),
                        "share": round(rest * 100 / total, 2) if total else 0.0,
                        "count": max(len(ranked) - top, 0),
                    },
                }
            )
        return {"month": month, **out[0], "other_currencies": out[1:]}

    def recent(self, user_id: str, limit: int) -> list[Any]:
        page = self.ledger.list_transactions(user_id, TransactionFilter(), limit, None)
        return page.items

    def accounts(self, user_id: str, month: str | None) -> dict[str, Any]:
        month = parse_month(month) if month else self.this_month()
        model = self.ledger.get_months(user_id, [month]).get(month, {})
        rows = []
        for a in self._accounts(user_id):
            node = (model.get(a.currency, {}).get("accounts") or {}).get(a.id, {})
            income, expense = _flows(node)
            rows.append(
                {
                    "id": a.id,
                    "name": a.name,
                    "type": a.type.value,
                    "currency": a.currency,
                    "balance": money(a.balance, a.currency),
                    "month_income": money(income, a.currency),
                    "month_expense": money(expense, a.currency),
                    "month_transfers_in": money(int(node.get("transfers_in", 0)), a.currency),
                    "month_transfers_out": money(int(node.get("transfers_out", 0)), a.currency),
                }
            )
        return {"month": month, "accounts": rows}

    def category_insights(
        self, user_id: str, category_id: str, end: str | None, months: int
    ) -> dict[str, Any]:
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
            monthly: list[dict[str, Any]] = []
            by_account: dict[str, tuple[int, int]] = {}
            total_in = total_out = 0
            for month in span:
                node = ((models.get(month, {}).get(cur) or {}).get("categories") or {}).get(
                    category_id, {}
                )
                income, expense = _flows(node)
                total_in, total_out = total_in + income, total_out + expense
                monthly.append({"month": month, **_totals(cur, income, expense)})
                for aid, flows in (node.get("accounts") or {}).items():
                    i, e = _flows(flows)
                    prev = by_account.get(aid, (0, 0))
                    by_account[aid] = (prev[0] + i, prev[1] + e)
            accounts = [
                {
                    "account_id": aid,
                    "account_name": names.get(aid, "Deleted account"),
                    **_totals(cur, i, e),
                }
                for aid, (i, e) in sorted(by_account.items(), key=lambda kv: -sum(kv[1]))
                if i or e
            ]
            out.append(
                {
                    "currency": cur,
                    **_totals(cur, total_in, total_out),
                    "monthly": monthly,
                    "accounts": accounts,
                }
            )
        return {
            "category": {
                "id": category.id,
                "name": category.name,
                "color": category.color.value,
                "type": category.type.value,
            },
            "months": span,
            **out[0],
            "other_currencies": out[1:],
        }
