"""`nox -s verify` (python -m devstack verify) against the running stack: a ledger written
through the HTTP API has no drift; a balance changed behind the API's back is reported, with
exit status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.services import REPO_ROOT
from devstack.stack import Stack
from tests.e2e.conftest import Api
from valorize import bootstrap


def verify(stack: Stack, tmp_path: Path, *args: str) -> tuple[int, str, list[dict[str, object]]]:
    # Pointed at the stack through its stack file, as `nox -s verify` finds `nox -s dev`'s.
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps(stack.stack_json()))
    env = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    out = tmp_path / "reports.json"
    command = [sys.executable, "-m", "devstack", "verify", "--stack-file", str(stack_file)]
    done = subprocess.run(
        [*command, "--json", str(out), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, json.loads(out.read_text())


def test_verify_reports_no_drift_then_the_tampered_balance(
    api: Api, stack: Stack, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    checking = api.account(opening_balance=10_000)
    savings = api.account(name="Savings")
    for amount in (-1_250, 300_000, -7):
        api.txn(checking["id"], amount)
    moved = api.post(
        "/api/transactions/transfers",
        {
            "from_account_id": checking["id"],
            "to_account_id": savings["id"],
            "amount": 5_000,
            "date": "2025-03-01",
            "description": "to savings",
        },
    )
    assert moved.status_code == 201, moved.text
    email = api.email  # type: ignore[attr-defined]
    status, output, reports = verify(stack, tmp_path, "--email", email)
    assert status == 0, output
    (report,) = reports
    assert report["ok"] and report["transactions"] == 5 and report["accounts"] == 2, report
    assert "no drift" in output

    ref = bootstrap.build().firestore.document(
        f"users/{report['user_id']}/accounts/{savings['id']}"
    )
    ref.update({"balance": 4_999})
    status, output, reports = verify(stack, tmp_path, "--user", str(report["user_id"]))
    assert status == 1, output
    assert reports[0]["drift"] == [
        {"kind": "balance", "where": savings["id"], "stored": 4_999, "expected": 5_000}
    ]
    assert f"balance {savings['id']}: stored 4999, expected 5000" in output
