"""The log audit: no password, token or internal secret that the end-to-end tests used appears
in any log the stack wrote (functions, gateway, realtime instances, emulators).

It runs after every other test (tests/conftest.py orders it last), so it reads the logs of
the whole run: registrations, logins, password changes, issued and revoked tokens, hostile
inputs, internal task calls, failures with their stack traces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.e2e.conftest import SECRETS

# A token is vz_<id>_<secret>; its id may be logged (it names the token), its secret never.
SECRET_PART = 43
RUN = re.compile(rb"[A-Za-z0-9_-]{%d,}" % SECRET_PART)


def leaks(text: bytes, secrets: set[bytes], literals: set[bytes]) -> set[bytes]:
    found = {s for s in literals if s in text}
    for match in RUN.finditer(text):
        run = match.group()
        found |= {
            run[i : i + SECRET_PART]
            for i in range(len(run) - SECRET_PART + 1)
            if run[i : i + SECRET_PART] in secrets
        }
    return found


def test_leaks_finds_a_secret_inside_a_token_and_a_password() -> None:
    secret = b"A" * 20 + b"-" + b"b" * 22
    line = b'{"message": "auth vz_0123_' + secret + b'", "password": "hunter2 hunter2"}'
    assert leaks(line, {secret}, {b"hunter2 hunter2"}) == {secret, b"hunter2 hunter2"}
    assert leaks(b"vz_0123_" + b"C" * 43, {secret}, {b"hunter2 hunter2"}) == set()


@pytest.mark.audits_logs
def test_no_secret_appears_in_any_log_line(stack: Stack) -> None:
    token_secrets = {t.rsplit("_", 1)[-1].encode() for t in SECRETS.tokens}
    token_secrets = {s for s in token_secrets if len(s) == SECRET_PART}
    literals = {p.encode() for p in SECRETS.passwords if len(p) >= 8}
    literals.add(stack.secret.encode())
    logs = [p for p in Path(stack.log_dir).rglob("*") if p.is_file()]
    assert logs, stack.log_dir
    found: dict[str, set[bytes]] = {}
    for path in logs:
        hit = leaks(path.read_bytes(), token_secrets, literals)
        if hit:
            found[str(path)] = {h[:6] + b"..." for h in hit}
    assert not found, found
    # Proof that the audit looked at something: this run's secrets and log lines.
    assert token_secrets and literals and sum(p.stat().st_size for p in logs) > 0
