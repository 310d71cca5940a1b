"""What one user can make the platform do to itself and to the others (issue 12, defects 1
and 4): the CPU one write can cost through the rules, the ceilings on what a user creates,
and the per-user rate limits on writes and uploads. Through the gateway and the functions.

Figures are ratios against a floor measured side by side in the same run, never absolute
times: the CPU the transactions function spends on a write with the attacker's rules over
the CPU it spends on the same write with no rules."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import psutil
import pytest
import requests
from limits import parse

from devstack.stack import Stack
from tests.conftest import E2E_WRITE_RATE
from tests.e2e.conftest import Api, assert_problem, register
from valorize.domain.ceilings import RECURRENCE_BACKDATE_DAYS as BACKDATE

pytestmark = pytest.mark.e2e

# The attack of issue 12: 200 rules whose regex backtracks catastrophically on a description
# of 200 "a"s and a "!" (each rule ran into the old 50 ms per-regex time limit: ~10 s a write).
ATTACK_PATTERN = "(a|aa)+$"
ATTACK_RULES = 200
ATTACK_DESCRIPTION = "a" * 200 + "!"
# A write through 200 rules may cost this many times a write through none, at most. Before
# RE2 it was ~500 (10 s of CPU). The regexes now cost ~1 ms; what remains (~7x, ~0.1 s) is
# reading and parsing the 200 rules from Firestore on each write, which any user with 200
# rules pays and max_rules bounds.
MAX_RATIO = 20.0
# Writes per CPU sample: /proc counts CPU in 10 ms ticks and a write without rules now costs
# less than one, so a single write's sample was 0 or 10 ms (a floor of 0 made any ratio huge).
WRITES_PER_SAMPLE = 10


def function_process(stack: Stack, name: str) -> psutil.Process:
    """The functions-framework process serving function `name`."""
    for pid in stack.pids():
        process = psutil.Process(pid)
        cmdline = process.cmdline()
        if "--target" in cmdline and cmdline[cmdline.index("--target") + 1] == name:
            return process
    raise LookupError(f"no process for function {name}")


def cpu_seconds(process: psutil.Process) -> float:
    """CPU (user + system) of the process and its children so far."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def cpu_of(process: psutil.Process, write: Callable[[], Any]) -> float:
    before = cpu_seconds(process)
    write()
    return cpu_seconds(process) - before


def attack_rule(api: Api, index: int) -> dict[str, Any]:
    return {
        "name": f"attack {index}",
        "conditions": [{"field": "description", "op": "matches", "value": ATTACK_PATTERN}],
        "actions": [{"action": "add_note", "value": f"matched {index}"}],
    }


class TestRuleCost:
    def test_two_hundred_backtracking_rules_cost_a_write_about_nothing(
        self, stack: Stack, base_url: str, record_property: Callable[[str, Any], None]
    ) -> None:
        attacker, floor = register(base_url), register(base_url)
        accounts = {id(attacker): attacker.account()["id"], id(floor): floor.account()["id"]}
        for i in range(ATTACK_RULES):
            r = attacker.post("/api/rules", attack_rule(attacker, i))
            if r.status_code == 422:
                # Refused as a pattern that backtracks: the attack cannot even be set up.
                assert_problem(r, 422, "conditions.0.value")
                break
            assert r.status_code == 201, r.text
        # The most a user may have (Settings.max_rules): one more is refused, naming it.
        problem = assert_problem(
            attacker.post("/api/rules", attack_rule(attacker, -1)), 422, "rules"
        )
        assert problem["limit"] == ATTACK_RULES
        process = function_process(stack, "transactions")

        def write(api: Api, n: int) -> Callable[[], Any]:
            def writes() -> None:
                for k in range(WRITES_PER_SAMPLE):
                    description = f"{ATTACK_DESCRIPTION}{n}-{k}"
                    api.txn(accounts[id(api)], -100, description=description)

            return writes

        # Warm both paths (first-use imports), then alternate so drift hits both alike.
        write(floor, -1)()
        write(attacker, -1)()
        floors, attacks = [], []
        for n in range(3):
            floors.append(cpu_of(process, write(floor, n)))
            attacks.append(cpu_of(process, write(attacker, n)))
        ratio = statistics.median(attacks) / max(statistics.median(floors), 1e-3)
        record_property("rules_attack_cpu_ratio", round(ratio, 2))
        print(
            f"\nwrite CPU: no rules {statistics.median(floors) * 1000:.1f} ms, "
            f"{ATTACK_RULES} x {ATTACK_PATTERN} {statistics.median(attacks) * 1000:.1f} ms, "
            f"ratio {ratio:.2f}"
        )
        assert ratio < MAX_RATIO, (floors, attacks)

    def test_a_pattern_with_a_back_reference_or_look_around_is_refused_naming_it(
        self, api: Api
    ) -> None:
        for pattern in [r"(a)\1", r"(?<=pix )uber", r"(?=a)a", "a{1001}"]:
            body = attack_rule(api, 0)
            body["conditions"][0]["value"] = pattern
            r = api.post("/api/rules", body)
            problem = assert_problem(r, 422, "conditions.0.value")
            assert "pattern" in problem["detail"], problem


def days_ago(n: int) -> str:
    return (date.today() - timedelta(days=n)).isoformat()


class TestCeilings:
    """The stack's ceilings are tests/conftest.py's: 20 accounts, 20 recurrences."""

    def test_accounts_past_the_limit_are_refused_naming_it(self, api: Api) -> None:
        for i in range(20):
            api.account(name=f"Account {i}")
        problem = assert_problem(
            api.post("/api/accounts", {"name": "One more", "type": "checking", "currency": "BRL"}),
            422,
            "accounts",
        )
        assert problem["limit"] == 20
        assert len(api.get("/api/accounts?limit=200").json()["data"]) == 20

    def test_recurrences_past_the_limit_are_refused_naming_it(self, api: Api) -> None:
        account = api.account()["id"]
        for i in range(20):
            assert (
                api.post("/api/recurrences", recurrence(account, days_ago(0), f"r{i}")).status_code
                == 201
            )
        r = api.post("/api/recurrences", recurrence(account, days_ago(0), "one more"))
        assert assert_problem(r, 422, "recurrences")["limit"] == 20

    def test_a_recurrence_cannot_start_further_back_than_the_limit(self, api: Api) -> None:
        account = api.account()["id"]
        for start in ("0001-01-01", days_ago(BACKDATE + 1)):
            r = api.post("/api/recurrences", recurrence(account, start, "ancient"))
            assert_problem(r, 422, "start")
        assert api.get("/api/recurrences").json()["data"] == []
        made = api.post("/api/recurrences", recurrence(account, days_ago(BACKDATE), "oldest"))
        assert made.status_code == 201, made.text
        moved = api.patch(f"/api/recurrences/{made.json()['id']}", {"start": "0001-01-01"})
        assert_problem(moved, 422, "start")


def recurrence(account_id: str, start: str, description: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "amount": -100,
        "description": description,
        "schedule": {"frequency": "daily"},
        "start": start,
    }


class TestRateLimits:
    """The test stack's write rate (tests/conftest.py: the suite's own writes stay under it)
    and the default 30 uploads an hour per user."""

    def test_writes_past_the_limit_get_429_with_retry_after_and_others_are_not_slowed(
        self, api: Api, other: Api
    ) -> None:
        limit = parse(E2E_WRITE_RATE).amount  # writes per window
        # Cheap writes: an invalid body is refused after it was counted.
        clients = [Api(api.base, api.token) for _ in range(8)]

        def write(i: int) -> int:
            return clients[i % 8].post("/api/accounts", {}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(write, range(limit)))
        assert set(statuses) == {422}, sorted(set(statuses))
        r = api.post("/api/accounts", {"name": "x", "type": "checking", "currency": "BRL"})
        problem = assert_problem(r, 429)
        assert 1 <= int(r.headers["Retry-After"]) <= parse(E2E_WRITE_RATE).get_expiry(), r.headers
        assert "retry" in problem["detail"]
        # Reads still answer; another user's writes are not counted with these.
        assert api.get("/api/accounts").status_code == 200
        assert (
            other.post(
                "/api/accounts", {"name": "x", "type": "checking", "currency": "BRL"}
            ).status_code
            == 201
        )

    def test_uploads_past_the_limit_get_429_with_retry_after(self, api: Api) -> None:
        def upload() -> requests.Response:
            # No file: refused (422) after it was counted, so no import runs.
            return api.post("/api/imports", None, data={"format": "csv"}, files={"x": ("x", b"")})

        statuses = [upload().status_code for _ in range(30)]
        assert 429 not in statuses, statuses
        r = upload()
        assert_problem(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
