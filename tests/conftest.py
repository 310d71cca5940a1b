"""Shared fixtures. The local cloud (emulators, functions, gateway) is started once per test
session on free ports by devstack, the same code `nox -s dev` runs, and stopped at the end."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack.stack import Stack, StackConfig  # noqa: E402

# The e2e stack's per-user write rate: above what one test's user writes (the hostile-input
# property tests write hundreds a minute); e2e/test_abuse.py sends exactly this many, then one.
E2E_WRITE_RATE = "1000/hour"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    config = StackConfig(
        # Statements for imports live in the Storage emulator (e2e/test_imports.py).
        storage=True,
        # Scheduler runs, rules jobs and notifications go through Cloud Tasks.
        tasks=True,
        # The notify function emails through the SMTP sink (e2e/test_notifications.py).
        smtp=True,
        gateway=True,
        # Two realtime_server instances behind the gateway's /socket.io/ (e2e/test_realtime.py).
        realtime=True,
        log_dir=ROOT / ".local" / "test-logs",
        # A short breaker so the Redis-outage test sees the cache come back quickly.
        extra_env={
            "VALORIZE_CACHE_BREAKER_SECONDS": "1",
            "VALORIZE_REALTIME_BREAKER_SECONDS": "1",
            # Low ceilings, so e2e/test_abuse.py reaches them in a few requests.
            "VALORIZE_MAX_ACCOUNTS": "20",
            "VALORIZE_MAX_RECURRENCES": "20",
            "VALORIZE_WRITE_RATE": E2E_WRITE_RATE,
            # Small deletion pages and deliveries, so e2e/test_account_deletion.py sees a
            # few dozen transactions go over several task deliveries.
            "VALORIZE_ACCOUNT_DELETE_PAGE": "5",
            "VALORIZE_ACCOUNT_DELETE_BUDGET_SECONDS": "0.3",
        },
    )
    with Stack(config) as running:
        yield running


@pytest.fixture(scope="session")
def emulator_env(stack: Stack) -> Iterator[dict[str, str]]:
    """Point in-process clients (the store, Redis) at the test stack's emulators."""
    saved = dict(os.environ)
    os.environ.update(stack.env)

    # Built again from the new environment on first use.
    yield stack.env
    os.environ.clear()
    os.environ.update(saved)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The log audit (tests/e2e/test_logs.py) reads what every other test made the stack log,
    so it runs after all of them."""
    last = [item for item in items if item.get_closest_marker("audits_logs")]
    if last:
        items[:] = [item for item in items if item not in last] + last
