"""Accounts, categories and transactions through the gateway, against the emulators."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import Api, assert_problem

# --- accounts ---------------------------------------------------------------------------------


def test_account_crud_with_opening_balance(api: Api) -> None:
    acc = api.account(
        name="Nubank",
        opening_balance=150_000,
        bank_code="260",
        bank_name="Nubank",
        number="12345-6",
    )
    assert acc["balance"] == {"amount": 150_000, "currency": "BRL"}
    assert acc["opening_balance"] == {"amount": 150_000, "currency": "BRL"}
    api.txn(acc["id"], -50_000)
    r = api.patch(f"/api/accounts/{acc['id']}", {"name": "Nu", "opening_balance": 100_000})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Nu"
    assert r.json()["balance"]["amount"] == 50_000  # 100,000 opening - 50,000 spent
    assert api.balance(acc["id"]) == 50_000
    listed = api.get("/api/accounts").json()
    assert [a["id"] for a in listed["data"]] == [acc["id"]] and listed["next_cursor"] is None


def test_currency_change_refused_once_there_are_transactions(api: Api) -> None:
    acc = api.account()
    assert api.patch(f"/api/accounts/{acc['id']}", {"currency": "USD"}).json()["currency"] == "USD"
    api.txn(acc["id"], 100)
    assert_problem(api.patch(f"/api/accounts/{acc['id']}", {"currency": "EUR"}), 409)


def test_deleting_an_account_with_transactions_needs_confirmation(api: Api) -> None:
    acc = api.account()
    other_acc = api.account(name="Savings", type="savings")
    t = api.txn(acc["id"], -100)
    tr = api.post(
        "/api/transactions/transfers",
        {
            "from_account_id": acc["id"],
            "to_account_id": other_acc["id"],
            "amount": 500,
            "date": "2025-03-02",
            "description": "to savings",
        },
    ).json()
    assert_problem(api.delete(f"/api/accounts/{acc['id']}"), 409)
    started = api.delete(f"/api/accounts/{acc['id']}?confirm=true")
    assert started.status_code == 202, started.text
    assert_problem(api.get(f"/api/accounts/{acc['id']}"), 404)  # hidden at once
    api.deletion_done(acc["id"])
    assert_problem(api.get(f"/api/transactions/{t['id']}"), 404)
    # The savings side of the transfer stays, unlinked, and its balance with it.
    kept = api.get(f"/api/transactions/{tr['to']['id']}").json()
    assert kept["counterpart_id"] is None and kept["amount"] == 500
    assert api.balance(other_acc["id"]) == 500


def test_empty_account_deletes_without_confirmation(api: Api) -> None:
    acc = api.account()
    assert api.delete(f"/api/accounts/{acc['id']}").status_code == 204


def test_accounts_paginate_with_cursor(api: Api) -> None:
    ids = [api.account(name=f"A{i}")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = api.get("/api/accounts?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


# --- categories -------------------------------------------------------------------------------


def test_category_crud_and_unique_names(api: Api) -> None:
    r = api.post("/api/categories", {"name": "Pets", "color": "peach", "type": "expense"})
    assert r.status_code == 201, r.text
    pets = r.json()
    assert_problem(api.post("/api/categories", {"name": "  pets ", "color": "red"}), 409)
    child = api.post(
        "/api/categories", {"name": "Vet", "color": "red", "parent_id": pets["id"]}
    ).json()
    assert child["parent_id"] == pets["id"]
    renamed = api.patch(f"/api/categories/{pets['id']}", {"name": "Animals", "color": "teal"})
    assert renamed.status_code == 200 and renamed.json()["color"] == "teal"
    # The old name is free again; the new one is taken.
    assert api.post("/api/categories", {"name": "PETS", "color": "red"}).status_code == 201
    assert_problem(api.patch(f"/api/categories/{child['id']}", {"name": "animals"}), 409)
    assert_problem(api.post("/api/categories", {"name": "X", "color": "purple"}), 422, "color")


def test_deleting_a_category_in_use(api: Api) -> None:
    acc = api.account()
    cats = api.categories()
    food, health = cats["Alimentação"]["id"], cats["Saúde"]["id"]
    leisure = cats["Lazer"]["id"]
    t = api.txn(acc["id"], -1000, category_id=food)
    s = api.txn(
        acc["id"],
        -1000,
        splits=[{"category_id": food, "amount": -600}, {"category_id": leisure, "amount": -400}],
    )
    assert_problem(api.delete(f"/api/categories/{food}"), 409)
    assert api.delete(f"/api/categories/{food}?reassign_to={health}").status_code == 204
    assert api.get(f"/api/transactions/{t['id']}").json()["category_id"] == health
    split_cats = [
        x["category_id"] for x in api.get(f"/api/transactions/{s['id']}").json()["splits"]
    ]
    assert split_cats == [health, leisure]
    assert api.delete(f"/api/categories/{health}?uncategorize=true").status_code == 204
    assert api.get(f"/api/transactions/{t['id']}").json()["category_id"] is None
    unused = api.post("/api/categories", {"name": "Unused", "color": "sky"}).json()
    assert api.delete(f"/api/categories/{unused['id']}").status_code == 204


# --- transactions -----------------------------------------------------------------------------


def test_transaction_lifecycle_moves_the_balance(api: Api) -> None:
    acc = api.account(opening_balance=10_000)
    t = api.txn(acc["id"], -2_500)
    assert t["type"] == "debit" and t["currency"] == "BRL"
    assert api.balance(acc["id"]) == 7_500
    r = api.patch(f"/api/transactions/{t['id']}", {"amount": 4_000, "notes": "refund"})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "credit" and r.json()["notes"] == "refund"
    assert api.balance(acc["id"]) == 14_000
    assert api.delete(f"/api/transactions/{t['id']}").status_code == 204
    assert api.balance(acc["id"]) == 10_000
    assert_problem(api.delete(f"/api/transactions/{t['id']}"), 404)


def test_client_sent_type_is_refused_not_trusted(api: Api) -> None:
    acc = api.account()
    r = api.post(
        "/api/transactions",
        {
            "account_id": acc["id"],
            "amount": -5,
            "date": "2025-01-01",
            "description": "x",
            "type": "credit",
        },
    )
    assert_problem(r, 422, "type")


def test_splits_must_add_up(api: Api) -> None:
    acc = api.account()
    cats = api.categories()
    food, fun = cats["Alimentação"]["id"], cats["Lazer"]["id"]
    bad = api.post(
        "/api/transactions",
        {
            "account_id": acc["id"],
            "amount": -1000,
            "date": "2025-01-05",
            "description": "Market",
            "splits": [{"category_id": food, "amount": -700}, {"category_id": fun, "amount": -200}],
        },
    )
    assert_problem(bad, 422, "splits")
    assert api.balance(acc["id"]) == 0
    ok = api.txn(
        acc["id"],
        -1000,
        splits=[{"category_id": food, "amount": -700}, {"category_id": fun, "amount": -300}],
    )
    assert [s["amount"] for s in ok["splits"]] == [-700, -300]
    # Changing the amount alone would break the sum: refused.
    assert_problem(api.patch(f"/api/transactions/{ok['id']}", {"amount": -900}), 422, "splits")
    both = api.patch(
        f"/api/transactions/{ok['id']}",
        {
            "amount": -900,
            "splits": [{"category_id": food, "amount": -600}, {"category_id": fun, "amount": -300}],
        },
    )
    assert both.status_code == 200, both.text
    assert api.balance(acc["id"]) == -900
    # A category filter finds split transactions too.
    found = api.get(f"/api/transactions?category_id={fun}").json()["data"]
    assert [t["id"] for t in found] == [ok["id"]]


def test_transfer_is_a_linked_pair_and_deleting_one_side_deletes_both(api: Api) -> None:
    a = api.account(opening_balance=10_000)
    b = api.account(name="Savings", type="savings")
    r = api.post(
        "/api/transactions/transfers",
        {
            "from_account_id": a["id"],
            "to_account_id": b["id"],
            "amount": 3_000,
            "date": "2025-04-01",
            "description": "Save",
        },
    )
    assert r.status_code == 201, r.text
    pair = r.json()
    assert pair["from"]["amount"] == -3_000 and pair["to"]["amount"] == 3_000
    assert pair["from"]["counterpart_id"] == pair["to"]["id"]
    assert (api.balance(a["id"]), api.balance(b["id"])) == (7_000, 3_000)
    edit = api.patch(f"/api/transactions/{pair['to']['id']}", {"amount": 2_000})
    assert edit.status_code == 200, edit.text
    assert api.get(f"/api/transactions/{pair['from']['id']}").json()["amount"] == -2_000
    assert (api.balance(a["id"]), api.balance(b["id"])) == (8_000, 2_000)
    assert api.delete(f"/api/transactions/{pair['to']['id']}").status_code == 204
    assert_problem(api.get(f"/api/transactions/{pair['from']['id']}"), 404)
    assert (api.balance(a["id"]), api.balance(b["id"])) == (10_000, 0)


def test_transfers_refuse_other_currencies_and_same_account(api: Api) -> None:
    a = api.account()
    usd = api.account(currency="USD")
    body = {
        "from_account_id": a["id"],
        "to_account_id": usd["id"],
        "amount": 1,
        "date": "2025-04-01",
        "description": "x",
    }
    assert_problem(api.post("/api/transactions/transfers", body), 422, "to_account_id")
    body["to_account_id"] = a["id"]
    assert_problem(api.post("/api/transactions/transfers", body), 422, "to_account_id")
    body["amount"] = -5
    assert_problem(api.post("/api/transactions/transfers", body), 422, "amount")


def test_list_filters_and_stable_cursor_pagination(api: Api) -> None:
    a = api.account()
    b = api.account(name="Card", type="credit")
    cats = api.categories()
    food = cats["Alimentação"]["id"]
    made = [
        api.txn(a["id"], -1_000, "2025-01-10", "Supermercado Pão de Açúcar", category_id=food),
        api.txn(a["id"], 500_000, "2025-01-05", "Salário"),
        api.txn(b["id"], -25_000, "2025-02-01", "Farmácia"),
        api.txn(a["id"], -3_000, "2025-02-01", "Padaria"),
        api.txn(b["id"], -120_000, "2025-03-15", "Aluguel"),
    ]
    ids = {t["description"]: t["id"] for t in made}

    def q(query: str) -> list[str]:
        r = api.get("/api/transactions?" + query)
        assert r.status_code == 200, r.text
        return [t["description"] for t in r.json()["data"]]

    assert q("") == ["Aluguel", "Padaria", "Farmácia", "Supermercado Pão de Açúcar", "Salário"]
    assert q(f"account_id={b['id']}") == ["Aluguel", "Farmácia"]
    assert q(f"category_id={food}") == ["Supermercado Pão de Açúcar"]
    assert q("from=2025-01-06&to=2025-02-01") == [
        "Padaria",
        "Farmácia",
        "Supermercado Pão de Açúcar",
    ]
    assert q("type=credit") == ["Salário"]
    assert q("type=debit&min_amount=3000&max_amount=25000") == ["Padaria", "Farmácia"]
    assert q("q=pao de acucar") == ["Supermercado Pão de Açúcar"]
    assert q("q=FARM") == ["Farmácia"]
    seen, cursor = [], None
    while True:
        page = api.get("/api/transactions?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[d] for d in q("")]
    assert_problem(api.get("/api/transactions?cursor=%%%"), 422, "cursor")
    assert_problem(api.get("/api/transactions?from=2025-02-01&to=2025-01-01"), 422, "from")
    assert_problem(api.get("/api/transactions?limit=201"), 422, "limit")
    assert_problem(api.get("/api/transactions?type=both"), 422, "type")


def test_idempotency_key_replays_and_writes_once(api: Api) -> None:
    acc = api.account()
    body = {"account_id": acc["id"], "amount": -700, "date": "2025-05-01", "description": "Uber"}
    key = {"Idempotency-Key": "retry-me-1"}
    first = api.post("/api/transactions", body, headers=key)
    second = api.post("/api/transactions", body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert api.balance(acc["id"]) == -700
    assert len(api.get(f"/api/transactions?account_id={acc['id']}").json()["data"]) == 1
    changed = api.post("/api/transactions", {**body, "amount": -701}, headers=key)
    assert_problem(changed, 422, "Idempotency-Key")


def test_concurrent_replays_of_one_key_write_once(api: Api) -> None:
    acc = api.account()
    body = {"account_id": acc["id"], "amount": -10, "date": "2025-05-01", "description": "x"}

    def send(_: int) -> int:
        return api.post("/api/transactions", body, headers={"Idempotency-Key": "race"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(8)))
    assert statuses == [201] * 8
    assert api.balance(acc["id"]) == -10


def test_fifty_concurrent_writes_leave_the_balance_exact(api: Api) -> None:
    acc = api.account(opening_balance=1_000_000)
    amounts = [(-1) ** i * (i * 137 + 1) for i in range(50)]

    def send(amount: int) -> int:
        return api.post(
            "/api/transactions",
            {
                "account_id": acc["id"],
                "amount": amount,
                "date": "2025-06-01",
                "description": f"t{amount}",
            },
        ).status_code

    with ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(send, amounts))
    assert statuses == [201] * 50
    assert api.balance(acc["id"]) == 1_000_000 + sum(amounts)
    assert api.get(f"/api/accounts/{acc['id']}").json()["transaction_count"] == 50
