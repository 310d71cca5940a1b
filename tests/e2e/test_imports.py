"""Bank statement imports end to end: upload through the gateway, staged by the worker via the
Cloud Tasks and Storage emulators, reviewed, committed, reverted.

Tasks run asynchronously (the emulator delivers one at a time), so every wait polls with a
deadline."""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.stack import Stack
from load.samples import csv_sample
from tests.e2e.conftest import Api, assert_problem
from valorize.domain.statements import LineError, StatementLine, parse_statement

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
DEADLINE = 90.0

OFX_VARIANTS = [
    "bank_sgml.ofx",
    "bank_v2.ofx",
    "comma_decimals.ofx",
    "creditcard_cp1252.ofx",
    "missing_fitid.ofx",
    "multi_statement.ofx",
    "name_without_memo.ofx",
    "ofx_fake.ofx",
    "tz_offsets.ofx",
]
CSV_PRESETS = {
    "bradesco.csv": "bradesco",
    "inter.csv": "inter",
    "nubank_account.csv": "nubank_account",
    "nubank_card.csv": "nubank_card",
    "generic.csv": "generic",
}


# --- helpers ----------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def upload(
    api: Api,
    data: bytes,
    name: str = "statement.ofx",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> requests.Response:
    return api.request(
        "POST",
        "/api/imports",
        files={"file": (name, io.BytesIO(data), "application/octet-stream")},
        data=fields,
        headers=headers,
    )


def wait(
    api: Api,
    import_id: str,
    until: tuple[str, ...] = ("ready", "failed"),
    seconds: float = DEADLINE,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        r = api.get(f"/api/imports/{import_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in until:
            return body
        assert time.monotonic() < deadline, f"import stuck in {body['status']}: {body}"
        time.sleep(0.2)


def staged(api: Api, data: bytes, name: str = "statement.ofx", **fields: str) -> dict[str, Any]:
    r = upload(api, data, name, **fields)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "uploaded"
    return wait(api, r.json()["id"])


def rows(api: Api, import_id: str, classification: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if classification:
            params["classification"] = classification
        if cursor:
            params["cursor"] = cursor
        r = api.get(f"/api/imports/{import_id}/rows", params=params)
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def commit(api: Api, import_id: str) -> dict[str, Any]:
    r = api.post(f"/api/imports/{import_id}/commit")
    assert r.status_code in (200, 202), r.text
    body: dict[str, Any] = r.json()
    return body if r.status_code == 200 else wait(api, import_id, ("committed",))


def revert(api: Api, import_id: str) -> dict[str, Any]:
    r = api.post(f"/api/imports/{import_id}/revert")
    assert r.status_code in (200, 202), r.text
    body: dict[str, Any] = r.json()
    return body if r.status_code == 200 else wait(api, import_id, ("reverted",))


def imported(api: Api, import_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"import_id": import_id, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        r = api.get("/api/transactions", params=params)
        assert r.status_code == 200, r.text
        out += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def parsed_lines(data: bytes, **kw: Any) -> list[StatementLine]:
    return [e for e in parse_statement(io.BytesIO(data), **kw) if isinstance(e, StatementLine)]


def user_id(api: Api) -> str:
    r = api.get("/api/auth/me")
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def task(stack: Stack, path: str, payload: dict[str, Any], secret: str | None = None) -> Any:
    base = stack.urls.functions["ingest"]
    headers = {"X-Valorize-Internal": stack.secret if secret is None else secret}
    return requests.post(base + path, json=payload, headers=headers, timeout=120)


# --- OFX variants and CSV presets -------------------------------------------------------------


@pytest.mark.parametrize("name", OFX_VARIANTS)
def test_each_ofx_variant_is_staged_committed_and_balanced(api: Api, name: str) -> None:
    data = fixture(name)
    expected = parsed_lines(data)
    record = staged(api, data, name)
    assert record["status"] == "ready", record
    assert record["format"] == "ofx"
    assert record["counts"] == {"new": len(expected), "duplicate": 0, "conflict": 0, "error": 0}
    assert record["progress"] == {"processed": len(expected), "total": len(expected)}
    got = rows(api, record["id"])
    assert [r["id"] for r in got] == sorted(r["id"] for r in got)
    assert [(r["amount"], r["date"], r["fitid"], r["description"]) for r in got] == [
        (e.amount, e.date.isoformat(), e.fitid, e.description) for e in expected
    ]
    assert all(r["classification"] == "new" and r["include"] for r in got)

    # One account per statement, created from the statement (type, currency, number).
    accounts = {a["id"]: a for a in api.get("/api/accounts").json()["data"]}
    statements = record["statements"]
    assert len(statements) == len({e.statement for e in expected})
    for s in statements:
        account = accounts[s["account_id"]]
        assert s["account_created"] is True
        assert account["currency"] == s["currency"]
        assert account["number"] == s["account_number"]
        if s["kind"] == "credit_card":
            assert account["type"] == "credit"

    done = commit(api, record["id"])
    assert done["status"] == "committed" and done["committed"] == len(expected)
    per_account: dict[str, int] = defaultdict(int)
    by_statement = {s["index"]: s["account_id"] for s in statements}
    for e in expected:
        per_account[by_statement[e.statement]] += e.amount
    for account_id, total in per_account.items():
        assert api.balance(account_id) == total
    txns = imported(api, record["id"])
    assert len(txns) == len(expected)
    assert {t["origin"] for t in txns} == {"import"}
    assert sorted(t["fitid"] or "" for t in txns) == sorted(e.fitid or "" for e in expected)


@pytest.mark.parametrize(("name", "preset"), sorted(CSV_PRESETS.items()))
def test_each_csv_preset(api: Api, name: str, preset: str) -> None:
    data = fixture(name)
    account = api.account(name=f"CSV {preset}")
    # Named explicitly and recognised from the header row: the same rows either way.
    for fields in ({"preset": preset}, {}):
        record = staged(api, data, name, account_id=account["id"], **fields)
        assert record["status"] == "ready", record
        assert record["format"] == "csv"
        assert record["account_ids"] == [account["id"]]
        assert record["statements"][0]["preset"] == preset
        events = list(parse_statement(io.BytesIO(data), preset=preset))
        lines = [e for e in events if isinstance(e, StatementLine)]
        errors = [e for e in events if isinstance(e, LineError)]
        assert record["counts"]["new"] == len(lines)
        assert record["counts"]["error"] == len(errors)
        got = [r for r in rows(api, record["id"]) if r["classification"] != "error"]
        assert [(r["amount"], r["date"], r["description"]) for r in got] == [
            (e.amount, e.date.isoformat(), e.description) for e in lines
        ]


def test_a_csv_with_bad_rows_stages_the_good_ones_and_says_why_for_the_others(api: Api) -> None:
    account = api.account()
    record = staged(api, fixture("generic.csv"), "generic.csv", account_id=account["id"])
    assert record["status"] == "ready"
    assert record["counts"] == {"new": 4, "duplicate": 0, "conflict": 0, "error": 4}
    errors = rows(api, record["id"], "error")
    assert [e["line"] for e in errors] == [5, 6, 7, 10]
    assert all(e["reason"] and not e["include"] and e["amount"] is None for e in errors)
    assert "date format" in errors[0]["reason"]
    assert "empty" in errors[1]["reason"]
    # An unreadable line cannot be included.
    r = api.patch(f"/api/imports/{record['id']}/rows/{errors[0]['id']}", {"include": True})
    assert_problem(r, 422, "include")
    done = commit(api, record["id"])
    assert done["committed"] == 4
    assert api.balance(account["id"]) == -450 + 325_000 - 1_999 + 1_200


# --- duplicates, conflicts --------------------------------------------------------------------


def test_reuploading_the_same_file_stages_only_duplicates(api: Api) -> None:
    data = fixture("bank_sgml.ofx")
    first = staged(api, data, "bank.ofx")
    commit(api, first["id"])
    account_id = first["account_ids"][0]
    balance = api.balance(account_id)

    again = staged(api, data, "bank.ofx")
    # The same account is found again by bank id + account number (not created twice).
    assert again["account_ids"] == [account_id]
    assert again["statements"][0]["account_created"] is False
    assert again["counts"] == {"new": 0, "duplicate": 5, "conflict": 0, "error": 0}
    dups = rows(api, again["id"], "duplicate")
    assert all(not r["include"] and r["matched"]["transaction_id"] for r in dups)
    done = commit(api, again["id"])
    assert done["status"] == "committed" and done["committed"] == 0
    assert api.balance(account_id) == balance
    assert len(api.get("/api/accounts").json()["data"]) == 1


def test_lines_without_fitid_match_by_amount_date_and_description(api: Api) -> None:
    account = api.account()
    # Already in the ledger: one of Bradesco's two identical Pix lines, two days off, in other
    # words; and a salary whose description is unrelated (not a duplicate).
    api.txn(account["id"], -152_000, "2025-06-05", "Pix enviado")
    api.txn(account["id"], 466_667, "2025-06-02", "Rent refund")
    record = staged(api, fixture("bradesco.csv"), "b.csv", account_id=account["id"])
    got = rows(api, record["id"])
    by_line = {r["line"]: r for r in got}
    # Two identical lines in the file, one existing transaction: one duplicate, one new.
    assert {by_line[5]["classification"], by_line[6]["classification"]} == {"duplicate", "new"}
    assert by_line[4]["classification"] == "new"  # same amount, different description
    assert record["counts"] == {"new": 4, "duplicate": 1, "conflict": 0, "error": 0}

    # After committing, the whole file again: every line is a duplicate (both Pix lines too).
    commit(api, record["id"])
    again = staged(api, fixture("bradesco.csv"), "b.csv", account_id=account["id"])
    assert again["counts"] == {"new": 0, "duplicate": 5, "conflict": 0, "error": 0}


def test_identical_lines_with_different_fitids_are_all_kept(api: Api) -> None:
    line = "<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20250301<TRNAMT>-5.00<FITID>{}<MEMO>Coffee</STMTTRN>"
    data = fixture("ofx_fake.ofx").replace(
        b"<BANKTRANLIST>",
        b"<BANKTRANLIST>" + "".join(line.format(f"C{i}") for i in range(3)).encode(),
    )
    record = staged(api, data, "coffee.ofx")
    assert record["counts"]["new"] == 5
    coffees = [r for r in rows(api, record["id"]) if r["description"] == "Coffee"]
    assert len(coffees) == 3 and all(r["classification"] == "new" for r in coffees)


def test_conflicts_wait_for_the_user_and_their_resolution_is_applied(api: Api) -> None:
    original = fixture("ofx_fake.ofx")
    first = staged(api, original, "a.ofx")
    commit(api, first["id"])
    account_id = first["account_ids"][0]
    assert api.balance(account_id) == 123_456 - 7_890

    # The bank re-sent FITID 1 with another amount and FITID 2 with another date.
    changed = original.replace(b"1234.56", b"1200.00").replace(b"20250116", b"20250120")
    second = staged(api, changed, "b.ofx")
    assert second["counts"] == {"new": 0, "duplicate": 0, "conflict": 2, "error": 0}
    conflicts = {r["fitid"]: r for r in rows(api, second["id"], "conflict")}
    assert not any(r["include"] for r in conflicts.values())
    assert conflicts["1"]["matched"]["amount"] == 123_456 and conflicts["1"]["amount"] == 120_000
    assert "amount" in conflicts["1"]["reason"] and "date" in conflicts["2"]["reason"]

    base = f"/api/imports/{second['id']}/rows"
    r = api.patch(f"{base}/{conflicts['1']['id']}", {"resolution": "import_anyway"})
    assert r.status_code == 200, r.text
    assert r.json()["include"] is True and r.json()["resolution"] == "import_anyway"
    r = api.patch(f"{base}/{conflicts['2']['id']}", {"resolution": "keep_existing"})
    assert r.status_code == 200 and r.json()["include"] is False
    # Contradictions and resolutions of non-conflicts are refused.
    r = api.patch(
        f"{base}/{conflicts['2']['id']}", {"include": True, "resolution": "keep_existing"}
    )
    assert_problem(r, 422, "include")
    assert_problem(api.patch(f"{base}/{conflicts['2']['id']}", {}), 422)
    assert_problem(api.patch(f"{base}/999-0000001", {"include": True}), 404)

    done = commit(api, second["id"])
    assert done["committed"] == 1
    assert api.balance(account_id) == 123_456 - 7_890 + 120_000
    [txn] = imported(api, second["id"])
    assert txn["fitid"] == "1" and txn["amount"] == 120_000
    # Rows cannot change once committed.
    r = api.patch(f"{base}/{conflicts['2']['id']}", {"resolution": "import_anyway"})
    assert_problem(r, 409)


def test_excluding_a_new_row_keeps_it_out(api: Api) -> None:
    account = api.account()
    record = staged(api, fixture("nubank_account.csv"), "n.csv", account_id=account["id"])
    first = rows(api, record["id"])[0]
    r = api.patch(f"/api/imports/{record['id']}/rows/{first['id']}", {"include": False})
    assert r.status_code == 200 and r.json()["include"] is False
    assert_problem(
        api.patch(
            f"/api/imports/{record['id']}/rows/{first['id']}", {"resolution": "keep_existing"}
        ),
        422,
        "resolution",
    )
    done = commit(api, record["id"])
    assert done["committed"] == 3
    assert all(t["fitid"] != first["fitid"] for t in imported(api, record["id"]))


# --- commit, dashboard, revert ----------------------------------------------------------------


def test_commit_moves_balances_and_dashboard_and_revert_undoes_exactly_it(api: Api) -> None:
    account = api.account(name="Banco do Brasil", opening_balance=10_000)
    manual = api.txn(account["id"], -2_000, "2025-01-20", "Padaria")
    summary = "/api/dashboard/summary?month=2025-01"
    before = api.get(summary).json()
    record = staged(api, fixture("bank_sgml.ofx"), "bb.ofx", account_id=account["id"])
    assert record["account_ids"] == [account["id"]]
    done = commit(api, record["id"])
    assert done["status"] == "committed" and done["committed"] == 5
    lines = parsed_lines(fixture("bank_sgml.ofx"))
    income = sum(e.amount for e in lines if e.amount > 0)
    expense = -sum(e.amount for e in lines if e.amount < 0)
    assert api.balance(account["id"]) == 10_000 - 2_000 + income - expense
    after = api.get(summary).json()
    assert after["income"]["amount"] == before["income"]["amount"] + income
    assert after["expense"]["amount"] == before["expense"]["amount"] + expense
    assert after["total_balance"]["amount"] == before["total_balance"]["amount"] + income - expense
    accounts = api.get(f"/api/accounts/{account['id']}").json()
    assert accounts["transaction_count"] == 6

    # Commit is idempotent.
    again = api.post(f"/api/imports/{record['id']}/commit")
    assert again.status_code == 200 and again.json()["committed"] == 5
    assert api.balance(account["id"]) == 10_000 - 2_000 + income - expense

    undone = revert(api, record["id"])
    assert undone["status"] == "reverted" and undone["reverted"] == 5
    assert imported(api, record["id"]) == []
    assert api.balance(account["id"]) == 10_000 - 2_000
    assert api.get(f"/api/transactions/{manual['id']}").status_code == 200
    final = api.get(summary).json()
    for key in ("income", "expense", "total_balance"):
        assert final[key] == before[key]
    # Revert is idempotent; a reverted import cannot be committed again.
    r = api.post(f"/api/imports/{record['id']}/revert")
    assert r.status_code == 200 and r.json()["status"] == "reverted"
    assert api.balance(account["id"]) == 10_000 - 2_000
    assert_problem(api.post(f"/api/imports/{record['id']}/commit"), 409)


def test_a_large_commit_and_revert_run_as_cloud_tasks(api: Api) -> None:
    data = csv_sample(1_200, layout="generic", seed=7)
    account = api.account()
    record = staged(api, data, "big.csv", account_id=account["id"])
    assert record["counts"]["new"] == 1_200
    r = api.post(f"/api/imports/{record['id']}/commit")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "committing"
    done = wait(api, record["id"], ("committed",))
    assert done["committed"] == 1_200
    total = sum(e.amount for e in parsed_lines(data, preset="generic"))
    assert api.balance(account["id"]) == total
    r = api.post(f"/api/imports/{record['id']}/revert")
    assert r.status_code == 202, r.text
    undone = wait(api, record["id"], ("reverted",))
    assert undone["reverted"] == 1_200
    assert api.balance(account["id"]) == 0


def test_commit_before_ready_and_revert_before_commit_are_conflicts(api: Api) -> None:
    record = staged(api, fixture("ofx_fake.ofx"), "x.ofx")
    assert_problem(api.post(f"/api/imports/{record['id']}/revert"), 409)
    failed = staged(api, fixture("truncated.ofx"), "t.ofx")
    assert_problem(api.post(f"/api/imports/{failed['id']}/commit"), 409)


# --- the worker: duplicate delivery, crash and resume -----------------------------------------


def test_a_redelivered_task_changes_nothing(api: Api, stack: Stack) -> None:
    record = staged(api, fixture("multi_statement.ofx"), "m.ofx")
    payload = {"user_id": user_id(api), "import_id": record["id"]}
    before = rows(api, record["id"])
    for _ in range(2):
        r = task(stack, "/api/ingest/tasks/process", payload)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready"
    after = api.get(f"/api/imports/{record['id']}").json()
    assert after["counts"] == record["counts"] and after["status"] == "ready"
    assert rows(api, record["id"]) == before
    assert len(api.get("/api/accounts").json()["data"]) == 3

    commit(api, record["id"])
    balances = {a: api.balance(a) for a in record["account_ids"]}
    for path in ("process", "commit", "revert"):
        r = task(stack, f"/api/ingest/tasks/{path}", payload)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "committed"
    assert {a: api.balance(a) for a in record["account_ids"]} == balances
    assert len(imported(api, record["id"])) == 4

    # Only the task queue's credentials reach the worker; a user token does not.
    assert task(stack, "/api/ingest/tasks/process", payload, secret="wrong").status_code == 401
    as_user = requests.post(
        stack.urls.functions["ingest"] + "/api/ingest/tasks/process",
        json=payload,
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=30,
    )
    assert as_user.status_code == 401
    # Through the gateway (the load balancer's stand-in) the worker is not even routed.
    assert api.post("/api/ingest/tasks/process", payload).status_code == 404
    # A task for an import that does not exist is acknowledged (not retried forever).
    gone = {"user_id": payload["user_id"], "import_id": "0" * 32}
    assert task(stack, "/api/ingest/tasks/process", gone).json() == {"status": "gone"}


def test_a_crash_mid_import_then_redelivery_gives_the_same_result(
    api: Api, stack: Stack, emulator_env: dict[str, str]
) -> None:
    from valorize import bootstrap
    from valorize.adapters.firestore.imports import FirestoreImports
    from valorize.service.imports import Upload
    from valorize.service.ports import NullBus

    class Nothing:
        def enqueue(self, *args: Any, **kwargs: Any) -> None: ...
        def notify(self, *args: Any) -> None: ...
        def publish(self, *args: Any) -> None: ...

    class Crash(Exception):
        pass

    class CrashingRepo(FirestoreImports):
        """Stages normally until the 1,000th row, then the process "dies"."""

        def row_writer(self, user_id: str, import_id: str) -> Any:
            writer = super().row_writer(user_id, import_id)
            original = writer.add
            added = iter(range(1, 10**9))

            def add(row: Any) -> None:
                if next(added) == 1_000:
                    raise Crash()
                original(row)

            writer.add = add  # type: ignore[method-assign]
            return writer

    uid = user_id(api)
    account = api.account()
    # A statement that already has a duplicate in the ledger, so classification matters.
    data = csv_sample(1_500, layout="generic", seed=3)
    first = parsed_lines(data)[10]
    api.txn(account["id"], first.amount, first.date.isoformat(), first.description)

    # The real import service on the emulators, its repository crashing, telling nobody.
    nothing = Nothing()
    # The stack's query cache (Redis): its import writes must invalidate the servers' cached
    # reads of them, as a worker's do.
    services = bootstrap.build(
        task_queue=nothing, notifier=nothing, realtime=nothing, bus=NullBus()
    )
    services.import_store = CrashingRepo(services.firestore)
    crashing = services.imports
    with crashing.receive(uid, None) as intake:
        intake.write(data)
        record, _ = crashing.upload(uid, Upload("crash.csv", account_id=account["id"]), intake)
    with pytest.raises(Crash):
        crashing.process(uid, record.id)
    half = api.get(f"/api/imports/{record.id}").json()
    assert half["status"] == "processing"
    assert 0 < len(rows(api, record.id)) < 1_500

    # Cloud Tasks redelivers: the worker starts over on the same row ids.
    r = task(stack, "/api/ingest/tasks/process", {"user_id": uid, "import_id": record.id})
    assert r.status_code == 200, r.text
    resumed = wait(api, record.id)
    assert resumed["status"] == "ready"
    assert resumed["counts"] == {"new": 1_499, "duplicate": 1, "conflict": 0, "error": 0}
    resumed_rows = rows(api, record.id)
    assert len(resumed_rows) == 1_500

    # A clean run of the same file stages exactly the same rows.
    clean = staged(api, data, "clean.csv", account_id=account["id"])
    assert clean["counts"] == resumed["counts"]
    strip = ("matched",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows(api, clean["id"])] == [
        {k: v for k, v in r.items() if k not in strip} for r in resumed_rows
    ]
    # Nothing reached the ledger before the commit.
    assert api.balance(account["id"]) == first.amount
    done = commit(api, record.id)
    assert done["committed"] == 1_499
    assert len(imported(api, record.id)) == 1_499


class Interrupted(Exception):
    """The commit or revert run "dies" here."""


def interrupted_service(at: str, calls: int, after_rows: int | None = None) -> Any:
    """The real import service on the emulators, telling nobody, working in chunks of 400
    rows, its repository dying at its `calls`-th `at` ("settle": the chunk's transactions
    are written but not settled; "write_commit" / "write_revert": only the first
    `after_rows` rows of the chunk are written)."""
    from valorize import bootstrap
    from valorize.adapters.firestore.imports import FirestoreImports
    from valorize.service.ports import NullBus

    class Nothing:
        def enqueue(self, *args: Any, **kwargs: Any) -> None: ...
        def notify(self, *args: Any) -> None: ...
        def publish(self, *args: Any) -> None: ...

    seen = defaultdict(int)

    class Dying(FirestoreImports):
        def settle(self, *args: Any, **kwargs: Any) -> Any:
            seen["settle"] += 1
            if at == "settle" and seen["settle"] == calls:
                raise Interrupted()
            return super().settle(*args, **kwargs)

        def write_commit(self, user_id: str, import_id: str, created: Any, skipped: Any) -> None:
            seen["write_commit"] += 1
            if at == "write_commit" and seen["write_commit"] == calls:
                super().write_commit(user_id, import_id, created[:after_rows], ())
                raise Interrupted()
            super().write_commit(user_id, import_id, created, skipped)

        def write_revert(self, user_id: str, import_id: str, rows: Any) -> Any:
            seen["write_revert"] += 1
            if at == "write_revert" and seen["write_revert"] == calls:
                super().write_revert(user_id, import_id, rows[:after_rows])
                raise Interrupted()
            return super().write_revert(user_id, import_id, rows)

    nothing = Nothing()
    # The stack's query cache (Redis): its import writes must invalidate the servers' cached
    # reads of them, as a worker's do.
    services = bootstrap.build(
        task_queue=nothing, notifier=nothing, realtime=nothing, bus=NullBus()
    )
    services.import_store = Dying(services.firestore, writers=3)
    service = services.imports
    service.commit_chunk = 400
    return service


def test_a_commit_or_revert_killed_mid_way_resumes_to_the_exact_result(
    api: Api, stack: Stack, emulator_env: dict[str, str]
) -> None:
    from tests.integration.test_readmodel_property import ledger_is_consistent
    from valorize import bootstrap
    from valorize.service.ports import NullBus

    uid = user_id(api)
    account = api.account(opening_balance=5_000)
    data = csv_sample(1_500, layout="generic", seed=5)
    lines = parsed_lines(data, preset="generic")
    record = staged(api, data, "resume.csv", account_id=account["id"], preset="generic")
    assert record["counts"]["new"] == 1_500
    payload = {"user_id": uid, "import_id": record["id"]}

    # Committing (1,500 rows > the inline limit: a task, which this test runs by hand).
    first = interrupted_service("write_commit", 2, after_rows=150)
    _, queued = first.commit(uid, record["id"])
    assert queued
    with pytest.raises(Interrupted):  # chunk 1 settled; half of chunk 2 written
        first.run_commit(uid, record["id"])
    with pytest.raises(Interrupted):  # chunk 2 finished; chunk 3 written, not settled
        interrupted_service("settle", 2).run_commit(uid, record["id"])
    half = api.get(f"/api/imports/{record['id']}").json()
    assert half["status"] == "committing" and half["committed"] == 800
    assert len(imported(api, record["id"])) == 1_200
    # The owner edits and deletes transactions the interrupted run wrote but did not settle.
    edited, deleted = rows(api, record["id"])[800:802]
    assert edited["committed"] and deleted["committed"]
    r = api.patch(f"/api/transactions/{edited['transaction_id']}", {"amount": -123})
    assert r.status_code == 200, r.text
    assert api.delete(f"/api/transactions/{deleted['transaction_id']}").status_code == 204
    changed = -123 - edited["amount"] - deleted["amount"]
    r = task(stack, "/api/ingest/tasks/commit", payload)  # Cloud Tasks retries
    assert r.status_code == 200, r.text
    done = api.get(f"/api/imports/{record['id']}").json()
    assert done["status"] == "committed" and done["committed"] == 1_500
    assert len(imported(api, record["id"])) == 1_499
    expected = 5_000 + sum(e.amount for e in lines) + changed
    assert api.balance(account["id"]) == expected
    services = bootstrap.build(bus=NullBus())
    ledger_is_consistent(services, uid)
    months = services.ledger.get_months(uid, sorted({e.date.isoformat()[:7] for e in lines}))

    # A redelivered commit task, and a commit asked again, change nothing.
    assert task(stack, "/api/ingest/tasks/commit", payload).json()["status"] == "committed"
    assert api.post(f"/api/imports/{record['id']}/commit").json()["status"] == "committed"
    assert api.balance(account["id"]) == expected
    assert services.ledger.get_months(uid, sorted(months)) == months
    assert api.get(f"/api/imports/{record['id']}").json()["committed"] == 1_500

    # Reverting, killed twice the same ways.
    first = interrupted_service("write_revert", 2, after_rows=100)
    _, queued = first.revert(uid, record["id"])
    assert queued
    with pytest.raises(Interrupted):
        first.run_revert(uid, record["id"])
    with pytest.raises(Interrupted):
        interrupted_service("settle", 2).run_revert(uid, record["id"])
    r = task(stack, "/api/ingest/tasks/revert", payload)
    assert r.status_code == 200, r.text
    undone = api.get(f"/api/imports/{record['id']}").json()
    assert undone["status"] == "reverted" and undone["reverted"] == 1_499
    assert imported(api, record["id"]) == []
    assert api.balance(account["id"]) == 5_000
    ledger_is_consistent(services, uid)
    assert task(stack, "/api/ingest/tasks/revert", payload).json()["status"] == "reverted"
    assert api.balance(account["id"]) == 5_000


# --- bad files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("garbage.txt", b"hello, this is not a bank statement\njust some words\n", "column"),
        ("truncated.ofx", fixture("truncated.ofx"), "Truncated"),
        ("empty.ofx", b"", "empty"),
        ("html_page.ofx", fixture("html_page.ofx"), "HTML"),
        ("noise.ofx", b"lorem ipsum dolor sit amet\n" * 20, "neither"),
    ],
)
def test_a_bad_file_fails_with_a_reason_and_no_transaction(
    api: Api, name: str, data: bytes, words: str
) -> None:
    r = upload(api, data, name)
    assert r.status_code == 202, r.text
    record = wait(api, r.json()["id"])
    assert record["status"] == "failed", record
    assert record["reason"] and words.lower() in record["reason"].lower(), record["reason"]
    assert "Traceback" not in record["reason"]
    assert imported(api, record["id"]) == []
    assert api.get("/api/transactions").json()["data"] == []


def test_unsupported_oversized_and_malformed_uploads_are_refused_at_once(
    api: Api, other: Api
) -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n"
    assert_problem(upload(api, pdf, "statement.pdf"), 415)
    assert_problem(upload(api, b"PK\x03\x04" + b"\x00" * 100, "statement.xlsx"), 415)
    assert_problem(upload(api, b"\x00\x01\x02" * 100, "statement.ofx"), 415)
    big = b"Date,Description,Amount\n" + b"2025-01-01,x,1.00\n" * (10 * 1024 * 1024 // 18 + 10)
    assert_problem(upload(api, big, "big.csv"), 413)
    r = api.post("/api/imports", {"file": "not multipart"})
    assert_problem(r, 415)
    r = api.request("POST", "/api/imports", data={"format": "ofx"}, files={"x": ("a", b"b")})
    assert_problem(r, 422)
    r = api.request("POST", "/api/imports", files={"other": ("a", b"b")}, data={})
    assert_problem(r, 422)
    data = fixture("ofx_fake.ofx")
    assert_problem(upload(api, data, format="pdf"), 422, "format")
    assert_problem(upload(api, data, format="ofx", preset="inter"), 422, "mapping")
    assert_problem(upload(api, data, preset="nope"), 422, "preset")
    assert_problem(upload(api, data, mapping="{not json"), 422, "mapping")
    assert_problem(upload(api, data, mapping='{"date": "Data"}'), 422)
    assert_problem(upload(api, data, currency="XYZ"), 422, "currency")
    foreign = other.account()
    assert_problem(upload(api, data, account_id=foreign["id"]), 422, "account_id")
    files = {"file": ("x.ofx", io.BytesIO(data), "application/x-ofx")}
    assert_problem(api.request("POST", "/api/imports", files=files, token="vz_nope"), 401)


def test_a_csv_mapping_reads_any_layout(api: Api) -> None:
    data = "Quando;O quê;Saiu;Entrou\n05/03/2025;Mercado;12,50;\n06/03/2025;Salário;;1.000,00\n"
    mapping = (
        '{"date": "Quando", "description": "O quê", "debit": "Saiu", "credit": "Entrou", '
        '"date_format": "%d/%m/%Y", "decimal_separator": ","}'
    )
    account = api.account()
    record = staged(api, data.encode(), "m.csv", account_id=account["id"], mapping=mapping)
    assert record["status"] == "ready", record
    got = rows(api, record["id"])
    assert [(r["date"], r["amount"], r["description"]) for r in got] == [
        ("2025-03-05", -1_250, "Mercado"),
        ("2025-03-06", 100_000, "Salário"),
    ]


# --- listing, isolation, idempotency, events --------------------------------------------------


def test_imports_are_listed_newest_first_and_private(api: Api, other: Api) -> None:
    ids = [upload(api, fixture("ofx_fake.ofx"), f"{i}.ofx").json()["id"] for i in range(3)]
    r = api.get("/api/imports?limit=2")
    assert r.status_code == 200
    page = r.json()
    assert [i["id"] for i in page["data"]] == ids[::-1][:2]
    nxt = api.get(f"/api/imports?limit=2&cursor={page['next_cursor']}").json()
    assert [i["id"] for i in nxt["data"]] == ids[:1] and nxt["next_cursor"] is None
    assert_problem(api.get("/api/imports?cursor=bogus"), 422)
    for path in ("", "/rows"):
        assert_problem(other.get(f"/api/imports/{ids[0]}{path}"), 404)
    assert_problem(other.post(f"/api/imports/{ids[0]}/commit"), 404)
    assert_problem(other.patch(f"/api/imports/{ids[0]}/rows/000-0000001", {"include": False}), 404)
    assert other.get("/api/imports").json()["data"] == []
    for i in ids:
        wait(api, i)


def test_an_idempotency_key_returns_the_first_upload(api: Api) -> None:
    data = fixture("ofx_fake.ofx")
    key = {"Idempotency-Key": "upload-7"}
    first = upload(api, data, "a.ofx", headers=key)
    again = upload(api, data, "a.ofx", headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert_problem(upload(api, fixture("bank_v2.ofx"), "b.ofx", headers=key), 422)
    wait(api, first.json()["id"])
    assert len(api.get("/api/imports").json()["data"]) == 1


def test_progress_and_outcome_are_published_live(
    api: Api, stack: Stack, emulator_env: dict[str, str]
) -> None:
    import redis

    from valorize.adapters.realtime import _keys

    uid = user_id(api)
    record = staged(api, csv_sample(2_500, layout="generic", seed=1), "p.csv")
    failed = staged(api, b"", "empty.ofx")
    # The user's realtime event log (what a reconnecting client catches up from).
    client = redis.Redis.from_url(emulator_env["REDIS_URL"])
    entries = client.xrange(_keys(uid)[1])
    events = [(f[b"event"].decode(), json.loads(f[b"envelope"])["data"]) for _, f in entries]
    mine = [(n, d) for n, d in events if d.get("id") == record["id"]]
    progress = [d for n, d in mine if n == "import.progress"]
    assert len(progress) >= 3 and progress[-1]["processed"] == progress[-1]["total"] == 2_500
    assert all(d["total"] == 2_500 for d in progress)
    assert [d["processed"] for d in progress] == sorted(d["processed"] for d in progress)
    assert ("import.ready", mine[-1][1]) == mine[-1] and mine[-1][1]["counts"]["new"] == 2_500
    [(name, data)] = [(n, d) for n, d in events if d.get("id") == failed["id"]]
    assert name == "import.failed" and data["reason"] == failed["reason"]


def test_rules_apply_at_commit_and_renamed_lines_are_still_recognised(api: Api) -> None:
    income = api.categories()["Receitas"]["id"]
    rule = {
        "name": "Salary",
        "conditions": [{"field": "description", "op": "contains", "value": "salario"}],
        "actions": [
            {"action": "set_category", "value": income},
            {"action": "rename_description", "value": "Paycheck"},
        ],
    }
    r = api.post("/api/rules", rule)
    assert r.status_code == 201, r.text
    account = api.account()
    record = staged(api, fixture("bradesco.csv"), "b.csv", account_id=account["id"])
    commit(api, record["id"])
    [salary] = [t for t in imported(api, record["id"]) if t["amount"] == 466_667]
    assert salary["description"] == "Paycheck" and salary["category_id"] == income
    # The statement still says CREDITO DE SALARIO: a re-upload knows it is the same line.
    again = staged(api, fixture("bradesco.csv"), "b.csv", account_id=account["id"])
    assert again["counts"]["duplicate"] == 5, again["counts"]
