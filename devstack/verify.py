"""``python -m devstack verify`` (``nox -s verify``): the integrity check of
shared/src/valorize/service/integrity.py for every user of a Firestore, or the users named.

Against the running local stack by default (its emulator from ``.local/stack.json``); with
FIRESTORE_EMULATOR_HOST or Google credentials and GOOGLE_CLOUD_PROJECT in the environment,
against that Firestore instead. It only reads. Exit status 0: no drift; 1: drift found (each
one printed); 2: nothing to check against.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from valorize import bootstrap
from valorize.config import Settings
from valorize.service.integrity import IntegrityReport

# A user with thousands of drifted counters is one broken user: show the first ones.
SHOWN_PER_USER = 20


def add_arguments(parser: argparse.ArgumentParser, default_stack_file: Path) -> None:
    parser.add_argument("--user", action="append", default=[], help="user id (repeatable)")
    parser.add_argument("--email", action="append", default=[], help="user email (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the reports to this file")
    parser.add_argument(
        "--stack-file",
        type=Path,
        default=default_stack_file,
        help="the running local stack's file (used when FIRESTORE_EMULATOR_HOST is unset)",
    )


def emulator_host(stack_file: Path) -> str | None:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return os.environ["FIRESTORE_EMULATOR_HOST"]
    if not stack_file.exists():
        return None
    host = json.loads(stack_file.read_text())["services"].get("firestore_host")
    return str(host) if host else None


def verify(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    host = emulator_host(args.stack_file)
    if host:
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
    elif not os.environ.get("GOOGLE_CLOUD_PROJECT"):
        print(
            f"no local stack ({args.stack_file} is missing: start `nox -s dev`) and no "
            "FIRESTORE_EMULATOR_HOST or GOOGLE_CLOUD_PROJECT to check instead",
            file=sys.stderr,
        )
        return 2
    services = bootstrap.build(Settings.from_env())
    users = list(args.user)
    for email in args.email:
        found = services.user_store.find_credentials(email)
        if found is None:
            print(f"no user with email {email!r}", file=sys.stderr)
            return 2
        users.append(found[0])
    check = services.integrity
    reports: list[IntegrityReport] = []
    for user_id in users or check.user_ids():
        report = check.check(user_id)
        reports.append(report)
        print(_line(report), file=out, flush=True)
        for drift in report.drift[:SHOWN_PER_USER]:
            print(f"    {drift}", file=out)
        if len(report.drift) > SHOWN_PER_USER:
            print(f"    ... and {len(report.drift) - SHOWN_PER_USER} more", file=out)
    drifted = [r for r in reports if not r.ok]
    print(
        f"{len(reports)} users, {sum(r.transactions for r in reports)} transactions checked: "
        + (f"{len(drifted)} with drift" if drifted else "no drift"),
        file=out,
    )
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    return 1 if drifted else 0


def _line(report: IntegrityReport) -> str:
    verdict = "ok" if report.ok else f"DRIFT ({len(report.drift)})"
    return (
        f"{report.user_id}: {verdict} — {report.transactions} transactions, "
        f"{report.accounts} accounts, {report.months} months"
    )
