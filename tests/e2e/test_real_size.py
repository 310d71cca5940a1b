"""Statements of the sizes banks really export, uploaded through the running servers
(functions-framework behind the gateway, and directly at the ingest function): every file up
to the documented limit (10 MiB, VALORIZE_MAX_STATEMENT_BYTES) uploads, stages and commits;
one byte more is a 413 and nothing is written.

A 2,000-line OFX (a year of a busy checking account, ~300 KB) used to be refused with that
413, because the multipart parser's text-field cap (64 KiB) also bounded its read buffer."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.stack import Stack
from load.samples import ofx_sample
from tests.e2e.conftest import Api, assert_problem, register
from tests.e2e.test_imports import parsed_lines, rows, user_id, wait

MIB = 1024 * 1024
LIMIT = 10 * MIB  # the stack runs with the default VALORIZE_MAX_STATEMENT_BYTES
# Staging and committing tens of thousands of rows on the emulator takes a while.
DEADLINE = 600.0


def sized_ofx(target: int, seed: int = 0) -> bytes:
    """The longest OFX statement (whole lines only) of at most `target` bytes."""
    lines = 1_000
    data = ofx_sample(lines, seed=seed)
    while step := int((target - len(data)) * lines / len(data)):
        lines += step
        data = ofx_sample(lines, seed=seed)
    while len(data) > target:
        lines -= 1
        data = ofx_sample(lines, seed=seed)
    return data


def post_file(base: str, token: str, data: bytes, **fields: str) -> requests.Response:
    return requests.post(
        base + "/api/imports",
        files={"file": ("statement.ofx", io.BytesIO(data), "application/x-ofx")},
        data=fields,
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )


def objects(stack: Stack, uid: str) -> list[str]:
    """The user's statement objects in the Storage emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined]

    env = stack.env
    client = storage.Client(
        project=env["GOOGLE_CLOUD_PROJECT"],
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )
    return [b.name for b in client.list_blobs(env["VALORIZE_BUCKET"], prefix=f"imports/{uid}/")]


@pytest.fixture(params=["gateway", "function"])
def base(request: pytest.FixtureRequest, stack: Stack) -> str:
    """Through the gateway, and straight at the ingest function's own server."""
    if request.param == "gateway":
        assert stack.urls.base_url
        return stack.urls.base_url
    return stack.urls.functions["ingest"]


def upload_stage_commit(
    api: Api, base: str, data: bytes, timings: dict[str, float]
) -> dict[str, Any]:
    """Upload `data` into a fresh account at `base`, wait until staged, commit; check the
    counts and the balance against the parser's own reading of the file."""
    assert api.token
    lines = parsed_lines(data)
    account = api.account()
    started = time.monotonic()
    r = post_file(base, api.token, data, account_id=account["id"])
    timings["upload"] = time.monotonic() - started
    assert r.status_code == 202, r.text
    import_id = r.json()["id"]
    started = time.monotonic()
    record = wait(api, import_id, ("ready", "failed"), DEADLINE)
    timings["stage"] = time.monotonic() - started
    assert record["status"] == "ready", record
    assert record["size"] == len(data)
    assert record["counts"] == {"new": len(lines), "duplicate": 0, "conflict": 0, "error": 0}
    assert record["progress"] == {"processed": len(lines), "total": len(lines)}
    started = time.monotonic()
    r = api.post(f"/api/imports/{import_id}/commit")
    assert r.status_code in (200, 202), r.text
    done = r.json() if r.status_code == 200 else wait(api, import_id, ("committed",), DEADLINE)
    timings["commit"] = time.monotonic() - started
    assert done["status"] == "committed", done
    assert done["committed"] == len(lines)
    assert api.balance(account["id"]) == sum(e.amount for e in lines)
    return dict(done)


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Iterator[dict[str, float]]:
    measured: dict[str, float] = {}
    yield measured
    print(f"\n{request.node.name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in measured.items()))


def test_a_year_of_a_checking_account(base: str, base_url: str, timings: dict[str, float]) -> None:
    # ~2,000 lines: a household account with five or six movements a day.
    data = ofx_sample(2_000, seed=11)
    assert 250_000 < len(data) < 400_000
    record = upload_stage_commit(register(base_url), base, data, timings)
    assert record["committed"] == 2_000


def test_a_one_mebibyte_statement(base: str, base_url: str, timings: dict[str, float]) -> None:
    data = sized_ofx(MIB + 64 * 1024, seed=12)
    assert len(data) > MIB
    upload_stage_commit(register(base_url), base, data, timings)


def test_a_statement_just_under_the_limit(
    base: str, base_url: str, timings: dict[str, float]
) -> None:
    """~69,500 lines, uploaded, staged and committed as a Cloud Task (the commit writes its
    transactions in big batches, several in flight, and settles balances and read models
    once per chunk)."""
    data = sized_ofx(LIMIT, seed=13)
    assert LIMIT - 1024 < len(data) <= LIMIT
    record = upload_stage_commit(register(base_url), base, data, timings)
    assert record["committed"] > 69_000


def test_exactly_the_limit_is_accepted_and_one_byte_more_is_refused(
    base: str, base_url: str, stack: Stack
) -> None:
    api = register(base_url)
    assert api.token
    uid = user_id(api)
    # Text, so it passes the upload's checks (the worker then says it is not a statement).
    at_limit = b"not a statement\n" * (LIMIT // 16)
    assert len(at_limit) == LIMIT
    r = post_file(base, api.token, at_limit)
    assert r.status_code == 202, r.text
    r = post_file(base, api.token, at_limit + b"x")
    body = assert_problem(r, 413)
    assert "10 MiB" in body["detail"]
    listed = api.get("/api/imports").json()["data"]
    assert len(listed) == 1
    assert len(objects(stack, uid)) == 1
    assert rows(api, listed[0]["id"]) == []
