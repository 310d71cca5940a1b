"""Locust file of the original's mixed scenario (run by load/mixed.py, headless).

Each virtual user registers its own user through the API, creates two accounts, picks a few of
its default categories and posts a few seed transactions (requests named "setup: ..."), then
loops with 1 s of think time over: 65 % `GET /api/transactions` filtered by an account, a
category or both (a page of 15), 20 % `POST /api/transactions`, 15 % `GET /api/accounts`.

The load shape steps through the stages (see mixed_shape.Stepper) and writes, for every stage,
Locust's own request statistics of that stage's measuring window as CSV
(`<prefix>_stage<N>.csv`, the columns of `--csv`'s `_stats.csv`) and one JSON line with the
window's wall-clock bounds (`<prefix>_stages.jsonl`), which the driver joins with the CPU it
sampled from /proc.

Configuration comes from the environment (the driver sets it): MIXED_STAGES ("25,50,..."),
MIXED_SETTLE, MIXED_WINDOW, MIXED_SETUP_TIMEOUT (seconds), MIXED_PREFIX (path prefix of the
stage files), MIXED_SEED_TRANSACTIONS.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from locust import FastHttpUser, LoadTestShape, constant, task
from locust.exception import StopUser
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV
from mixed_shape import (
    ERROR_SLO,
    MIX,
    P95_SLO_MS,
    PAGE,
    SETUP_PREFIX,
    THINK_SECONDS,
    Stepper,
    parse_stages,
)

PASSWORD = "mixed-bench-password-123"
# Registration hashes a password (argon2id, 64 MiB): faster spawning only queues hashes in the
# auth function, and requests that wait past the timeout still cost it the hash.
SPAWN_RATE = 10.0
TAIL_SECONDS = 3.0
DESCRIPTIONS = ("Pão de Açúcar", "Uber", "iFood", "Posto Shell", "Drogasil", "Netflix", "Feira")
PREFIX = os.environ.get("MIXED_PREFIX", "mixed")
SEED_TRANSACTIONS = int(os.environ.get("MIXED_SEED_TRANSACTIONS", "5"))
# Users whose setup has finished (successfully or not): the shape waits for them.
ready = 0
setup_failures = 0


def transaction_body(accounts: list[str], categories: list[str]) -> dict[str, Any]:
    day = dt.date.today() - dt.timedelta(days=random.randrange(90))
    body: dict[str, Any] = {
        "account_id": random.choice(accounts),
        "amount": -random.randint(100, 50_000),
        "date": day.isoformat(),
        "description": random.choice(DESCRIPTIONS),
    }
    if categories:
        body["category_id"] = random.choice(categories)
    return body


class MixedUser(FastHttpUser):
    wait_time = constant(THINK_SECONDS)
    # k6's default request timeout, which the original ran with: slower is an error.
    network_timeout = 60.0
    connection_timeout = 60.0

    accounts: list[str]
    categories: list[str]
    auth: dict[str, str]

    def on_start(self) -> None:
        global ready, setup_failures
        try:
            self.setup_user()
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            # Counted in the stage lines, logged, and the user leaves: its loop needs the ids.
            setup_failures += 1
            logging.error("mixed: a user's setup failed (%r); it stops", error)
            raise StopUser() from None
        finally:
            ready += 1

    def setup_user(self) -> None:
        email = f"mixed-{uuid.uuid4().hex[:16]}@valorize.dev"
        with self.client.post(
            "/api/auth/register",
            json={
                "email": email,
                "password": PASSWORD,
                "name": "Mixed Bench",
                "preferred_currency": "BRL",
            },
            name=SETUP_PREFIX + "register",
            catch_response=True,
        ) as r:
            if r.status_code != 201:
                r.failure(f"register answered {r.status_code}")
                raise RuntimeError("register")
            token = r.json()["token"]
        self.auth = {"Authorization": f"Bearer {token}"}
        page = self.client.get(
            "/api/categories?limit=200", headers=self.auth, name=SETUP_PREFIX + "categories"
        ).json()
        expenses = [c["id"] for c in page["data"] if c.get("type") == "expense"]
        self.categories = (expenses or [c["id"] for c in page["data"]])[:4]
        self.accounts = []
        for name, kind in (("Conta", "checking"), ("Cartão", "credit")):
            r = self.client.post(
                "/api/accounts",
                json={"name": name, "type": kind, "currency": "BRL"},
                headers=self.auth,
                name=SETUP_PREFIX + "account",
            )
            self.accounts.append(r.json()["id"])
        for _ in range(SEED_TRANSACTIONS):
            self.client.post(
                "/api/transactions",
                json=transaction_body(self.accounts, self.categories),
                headers=self.auth,
                name=SETUP_PREFIX + "transaction",
            )

    @task(MIX["list"])
    def list_transactions(self) -> None:
        # The original filtered by one or two accounts or categories; our API takes one
        # account and one category, so: an account, a category, or both.
        roll = random.random()
        if roll < 0.5 or not self.categories:
            kind, query = "account", f"account_id={random.choice(self.accounts)}"
        elif roll < 0.8:
            kind, query = "category", f"category_id={random.choice(self.categories)}"
        else:
            kind = "account+category"
            query = (
                f"account_id={random.choice(self.accounts)}"
                f"&category_id={random.choice(self.categories)}"
            )
        self.client.get(
            f"/api/transactions?limit={PAGE}&{query}",
            headers=self.auth,
            name=f"GET /api/transactions ({kind})",
        )

    @task(MIX["create"])
    def create_transaction(self) -> None:
        self.client.post(
            "/api/transactions",
            json=transaction_body(self.accounts, self.categories),
            headers=self.auth,
            name="POST /api/transactions",
        )

    @task(MIX["accounts"])
    def list_accounts(self) -> None:
        self.client.get("/api/accounts", headers=self.auth, name="GET /api/accounts")


class SteppedShape(LoadTestShape):
    """Steps through MIXED_STAGES; resets and writes Locust's statistics per stage window."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.stepper = Stepper(
            parse_stages(os.environ.get("MIXED_STAGES", "25,50")),
            settle=float(os.environ.get("MIXED_SETTLE", "5")),
            window=float(os.environ.get("MIXED_WINDOW", "30")),
            setup_timeout=float(os.environ.get("MIXED_SETUP_TIMEOUT", "60")),
        )
        self.opened: dict[int, float] = {}
        self.missed = 0
        self.last = 0
        self.ending: float | None = None

    def tick(self) -> tuple[int, float] | None:
        now = self.get_run_time()  # type: ignore[no-untyped-call]
        users = self.stepper.tick(now, ready)
        for event, index in self.stepper.events:
            if event == "open":
                assert self.runner is not None
                # What happened since the last window (setup requests, ramp): kept, then reset.
                self.write_csv(Path(f"{PREFIX}_stage{index}_ramp.csv"))
                self.runner.stats.reset_all()
                self.opened[index] = time.time()
            else:
                self.close(index)
        self.stepper.events.clear()
        if users is not None:
            self.last = users
            return users, SPAWN_RATE
        # Hold the load a few seconds past the last window, so the driver's once-a-second CPU
        # samples bracket it while the generator is still alive.
        if self.ending is None:
            self.ending = time.monotonic()
        return (self.last, SPAWN_RATE) if time.monotonic() - self.ending < TAIL_SECONDS else None

    def write_csv(self, path: Path) -> None:
        assert self.runner is not None
        with path.open("w", newline="") as f:
            StatsCSV(self.runner.environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(f))

    def close(self, index: int) -> None:
        assert self.runner is not None
        closed = time.time()
        path = Path(f"{PREFIX}_stage{index}.csv")
        self.write_csv(path)
        with Path(f"{PREFIX}_stage{index}_failures.csv").open("w", newline="") as f:
            StatsCSV(self.runner.environment, PERCENTILES_TO_REPORT).failures_csv(csv.writer(f))
        total = self.runner.stats.total
        p95 = total.get_response_time_percentile(0.95) if total.num_requests else None
        errors = total.num_failures / total.num_requests if total.num_requests else 1.0
        line = {
            "stage": index,
            "users": self.stepper.stages[index],
            "user_count": self.runner.user_count,
            "ready": ready,
            "setup_failures": setup_failures,
            "open": self.opened.get(index),
            "close": closed,
            "csv": path.name,
        }
        with Path(f"{PREFIX}_stages.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")
        # Two stages in a row past the SLO, or errors far past it: higher stages only cost
        # time. One slow stage alone does not stop the run: a neighbour's burst can cause it.
        self.missed = self.missed + 1 if (p95 is None or p95 > P95_SLO_MS) else 0
        if errors > 10 * ERROR_SLO or self.missed >= 2:
            self.stepper.stop()
