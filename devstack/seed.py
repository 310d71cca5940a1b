"""Demo data through the public API, so it exercises the same paths a user would.

Creates (or logs into) the demo user, three accounts and about four months of transactions
dated relative to today, including a split transaction and a transfer. Re-running it adds
another set of accounts and transactions: it is meant for a fresh stack.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import requests

DEMO_EMAIL = os.environ.get("VALORIZE_DEMO_EMAIL", "demo@valorize.dev")
DEMO_PASSWORD = os.environ.get("VALORIZE_DEMO_PASSWORD", "demo-password-123")
MONTHS = 4


class DemoUser(TypedDict):
    email: str
    password: str
    token: str


class SeedError(RuntimeError):
    pass


# Default categories are created at registration in Portuguese for pt-BR users and in English
# otherwise (their exact names belong to the auth function): match by any known name.
CATEGORY_NAMES: dict[str, tuple[str, ...]] = {
    "income": ("Receitas", "Income", "Salary", "Salário"),
    "food": ("Alimentação", "Food", "Groceries"),
    "transport": ("Transporte", "Transport", "Transportation"),
    "shopping": ("Compras", "Shopping"),
    "leisure": ("Lazer", "Leisure", "Entertainment"),
    "bills": ("Contas & Utilidades", "Bills & Utilities", "Housing", "Bills"),
    "health": ("Saúde", "Health"),
    "savings": ("Poupança", "Savings"),
}


@dataclass(frozen=True)
class Planned:
    account: str
    day: dt.date
    amount: int
    description: str
    category: str
    splits: Sequence[tuple[str, int]] = ()


class Api:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # The stack is on loopback: never route it through a proxy from the environment.
        self.session.trust_env = False

    def call(
        self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200, 201)
    ) -> requests.Response:
        response = self.session.request(
            method, f"{self.base_url}{path}", json=body, timeout=self.timeout
        )
        if response.status_code not in ok:
            raise SeedError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response

    def authenticate(self, token: str) -> None:
        self.session.headers["Authorization"] = f"Bearer {token}"


def _login(api: Api, email: str, password: str) -> str:
    registered = api.call(
        "POST",
        "/api/auth/register",
        {
            "email": email,
            "password": password,
            "name": "Demo User",
            "preferred_currency": "BRL",
            "locale": "pt-BR",
        },
        ok=(201, 409),
    )
    if registered.status_code == 201:
        return str(registered.json()["token"])
    logged_in = api.call("POST", "/api/auth/login", {"email": email, "password": password})
    return str(logged_in.json()["token"])


def _categories(api: Api) -> dict[str, str]:
    """Role (see CATEGORY_NAMES) -> category id; roles with no match fall back by type."""
    categories: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = f"?limit=200&cursor={cursor}" if cursor else "?limit=200"
        page = api.call("GET", f"/api/categories{query}").json()
        categories.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if not categories:
        raise SeedError("the demo user has no categories; defaults should exist at registration")
    by_name = {str(c["name"]).casefold(): str(c["id"]) for c in categories}
    by_type: dict[str, str] = {}
    for category in categories:
        by_type.setdefault(str(category.get("type")), str(category["id"]))
    fallback = str(categories[0]["id"])
    chosen: dict[str, str] = {}
    for role, names in CATEGORY_NAMES.items():
        match = next((by_name[n.casefold()] for n in names if n.casefold() in by_name), None)
        kind = "income" if role == "income" else "expense"
        chosen[role] = match or by_type.get(kind, fallback)
    return chosen


def _accounts(api: Api) -> dict[str, str]:
    accounts = {
        "checking": {
            "name": "Nubank",
            "type": "checking",
            "currency": "BRL",
            "bank_code": "260",
            "bank_name": "Nubank",
            "number": "12345-6",
            "opening_balance": 250000,
        },
        "savings": {
            "name": "Poupança Itaú",
            "type": "savings",
            "currency": "BRL",
            "bank_code": "341",
            "bank_name": "Itaú",
            "number": "98765-4",
            "opening_balance": 1000000,
        },
        "credit": {
            "name": "Cartão Inter",
            "type": "credit",
            "currency": "BRL",
            "bank_code": "077",
            "bank_name": "Inter",
            "number": "5555-1234",
            "opening_balance": 0,
        },
    }
    return {
        key: str(api.call("POST", "/api/accounts", body).json()["id"])
        for key, body in accounts.items()
    }


def _month_starts(today: dt.date, months: int) -> Iterator[dt.date]:
    year, month = today.year, today.month
    starts = []
    for _ in range(months):
        starts.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    yield from reversed(starts)


def plan(today: dt.date, months: int = MONTHS) -> list[Planned]:
    """The demo transactions: a plausible few months of a Brazilian household, never future."""
    planned: list[Planned] = []
    for index, first in enumerate(_month_starts(today, months)):

        def on(day: int, first: dt.date = first) -> dt.date:
            return first.replace(day=day)

        wiggle = index * 731 % 2000  # varies amounts month to month, deterministically
        planned += [
            Planned("checking", on(5), 850000, "Salário ACME Ltda", "income"),
            Planned("checking", on(6), -220000, "Aluguel", "bills"),
            Planned("checking", on(8), -18990 - wiggle // 10, "Enel energia", "bills"),
            Planned("checking", on(10), -9990, "Vivo fibra", "bills"),
            Planned("credit", on(3), -42315 + wiggle, "Pão de Açúcar", "food"),
            Planned("credit", on(12), -38760 - wiggle, "Carrefour", "food"),
            Planned("credit", on(21), -27540, "Feira livre", "food"),
            Planned("credit", on(7), -2390, "Uber", "transport"),
            Planned("credit", on(15), -3150 - wiggle // 5, "99 Táxi", "transport"),
            Planned("checking", on(18), -25000, "Posto Shell", "transport"),
            Planned("credit", on(14), -5590, "Netflix", "leisure"),
            Planned("credit", on(20), -8900, "Cinema", "leisure"),
            Planned("checking", on(25), -12000, "Drogasil", "health"),
            Planned("savings", on(1), 5200 + wiggle // 20, "Rendimento poupança", "savings"),
        ]
        if index == months - 1:
            planned.append(
                Planned(
                    "credit",
                    on(9),
                    -31580,
                    "Americanas: mercado e casa",
                    "shopping",
                    splits=(("food", -18420), ("shopping", -9660), ("health", -3500)),
                )
            )
    return [p for p in planned if p.day <= today]


def _transactions(
    api: Api, accounts: dict[str, str], categories: dict[str, str], today: dt.date
) -> int:
    planned = plan(today)
    for item in planned:
        body: dict[str, Any] = {
            "account_id": accounts[item.account],
            "amount": item.amount,
            "date": item.day.isoformat(),
            "description": item.description,
        }
        if not item.splits:
            body["category_id"] = categories[item.category]
        else:
            # A split transaction has no category of its own: each split carries one.
            if sum(amount for _, amount in item.splits) != item.amount:
                raise SeedError(f"splits of {item.description!r} do not add up")
            body["splits"] = [
                {"category_id": categories[role], "amount": amount} for role, amount in item.splits
            ]
        api.call("POST", "/api/transactions", body)
    transfer_day = max(today - dt.timedelta(days=3), today.replace(day=1))
    api.call(
        "POST",
        "/api/transactions/transfers",
        {
            "from_account_id": accounts["checking"],
            "to_account_id": accounts["credit"],
            "amount": 50000,
            "date": transfer_day.isoformat(),
            "description": "Pagamento fatura cartão",
        },
    )
    return len(planned) + 1


def seed(
    base_url: str,
    email: str = DEMO_EMAIL,
    password: str = DEMO_PASSWORD,
    today: dt.date | None = None,
) -> DemoUser:
    """Seed the demo user's data through the gateway at ``base_url``; return its credentials."""
    api = Api(base_url)
    token = _login(api, email, password)
    api.authenticate(token)
    categories = _categories(api)
    accounts = _accounts(api)
    _transactions(api, accounts, categories, today or dt.date.today())
    return {"email": email, "password": password, "token": token}
