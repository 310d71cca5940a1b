"""The login throttle under a burst, through the gateway and the auth function's threads: at
most 5 password checks per (email, address) however many bad logins arrive at once.

A login that gets a password check answers 401 (wrong password); one refused by the throttle
answers 429 without checking anything. So the number of 401s is the number of password
checks. Before the check and the count were one step, 40 or 100 concurrent bad logins got 12
checks: every request read "under the limit" before any of them had counted its failure."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import Api, assert_problem, register

LIMIT = 5


def login(base_url: str, email: str, password: str) -> requests.Response:
    return requests.post(
        base_url + "/api/auth/login", json={"email": email, "password": password}, timeout=60
    )


@pytest.mark.parametrize("burst", [40, 100])
def test_a_burst_of_bad_logins_gets_at_most_five_password_checks(base_url: str, burst: int) -> None:
    api: Api = register(base_url)
    email: str = api.email  # type: ignore[attr-defined]
    with ThreadPoolExecutor(burst) as pool:
        answers = list(pool.map(lambda _: login(base_url, email, "wrong password"), range(burst)))
    codes = Counter(r.status_code for r in answers)
    assert set(codes) <= {401, 429}, codes
    assert 1 <= codes[401] <= LIMIT, codes
    for r in answers:
        if r.status_code == 429:
            assert_problem(r, 429)
            assert int(r.headers["Retry-After"]) > 0
    # The right password waits too, and so does a burst of it.
    with ThreadPoolExecutor(10) as pool:
        right = list(pool.map(lambda _: login(base_url, email, "correct horse battery"), range(10)))
    assert [r.status_code for r in right] == [429] * 10


def test_a_success_clears_the_count_and_failures_of_others_do_not_lock_you_out(
    base_url: str,
) -> None:
    api: Api = register(base_url)
    email: str = api.email  # type: ignore[attr-defined]
    for _ in range(LIMIT - 1):
        assert login(base_url, email, "wrong password").status_code == 401
    assert login(base_url, email, "correct horse battery").status_code == 200
    # A fresh count: LIMIT more failures before the throttle.
    with ThreadPoolExecutor(LIMIT) as pool:
        answers = list(pool.map(lambda _: login(base_url, email, "nope nope"), range(LIMIT)))
    assert [r.status_code for r in answers] == [401] * LIMIT
    assert login(base_url, email, "correct horse battery").status_code == 429
