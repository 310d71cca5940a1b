"""What one user can make the platform do to itself and to the others (issue 12, defects 1
and 4): the CPU one write can cost through the rules, the ceilings on what a user creates,
and the per-user rate limits on writes and uploads. Through the gateway and the functions.

Figures are ratios against a floor measured side by side in the same run, never absolute
times: the CPU the transactions function spends on a write with the attacker's rules over
the CPU it spends on the same write with no rules."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import psutil
import pytest

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem, register

pytestmark = pytest.mark.e2e

# The attack of issue 12: 200 rules whose regex backtracks catastrophically on a description
# of 200 "a"s and a "!" (each rule ran into the old 50 ms per-regex time limit: ~10 s a write).
ATTACK_PATTERN = "(a|aa)+$"
ATTACK_RULES = 200
ATTACK_DESCRIPTION = "a" * 200 + "!"
# A write through 200 rules may cost this many times a write through none, at most. The rules
# themselves cost ~1 ms (RE2 runs in linear time); the rest is noise of a shared machine.
MAX_RATIO = 5.0


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
        process = function_process(stack, "transactions")

        def write(api: Api, n: int) -> Callable[[], Any]:
            return lambda: api.txn(accounts[id(api)], -100, description=ATTACK_DESCRIPTION + str(n))

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

    def test_the_number_of_rules_is_limited(self, api: Api) -> None:
        rules = api.get("/api/rules").json()
        assert rules["data"] == []
        # The limit is the stack's (tests/conftest.py sets it low to keep this quick).
        created = 0
        while True:
            r = api.post("/api/rules", attack_rule(api, created))
            if r.status_code != 201:
                break
            created += 1
            assert created <= 200
        problem = assert_problem(r, 422, "rules")
        assert problem["limit"] == created


def days_ago(n: int) -> str:
    return (date.today() - timedelta(days=n)).isoformat()
