"""The statement upload's edge: the multipart body parsed by werkzeug under Flask's request
context, the file streamed chunk by chunk into an Intake over an in-memory object store.

The 413 means one thing only: the file is larger than the limit. A 300 KB statement used to
be refused with it, because werkzeug's text-field cap (64 KiB) also bounds its read buffer."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import flask
import pytest

from load.samples import ofx_sample
from tests.fakes.imports import InMemoryStatementFiles
from valorize.domain.errors import DomainError
from valorize.entrypoints.imports import FORM_OVERHEAD, MAX_PARTS, READ_SIZE, parse_upload
from valorize.service.imports import Intake, Upload

FLASK = flask.Flask(__name__)
LIMIT = 200_000
ACCOUNT = "0190d5c3a1b27c4e8f0a1b2c3d4e5f60"  # the form ids are issued in


@pytest.fixture
def files() -> InMemoryStatementFiles:
    return InMemoryStatementFiles()


def intake(files: InMemoryStatementFiles, limit: int = LIMIT) -> Intake:
    return Intake(files, "imports/u1/i1", limit, "i1", None)


def parse(into: Intake, data: dict[str, Any] | None = None, **kw: Any) -> Upload:
    with FLASK.test_request_context(
        "/api/imports", method="POST", data=data, content_type="multipart/form-data", **kw
    ):
        return parse_upload(flask.request, into)


def status_of(error: pytest.ExceptionInfo[DomainError]) -> tuple[int, list[str]]:
    return error.value.status, [e.field for e in error.value.errors]


def test_a_statement_of_any_size_up_to_the_limit_streams_through_in_small_chunks(
    files: InMemoryStatementFiles,
) -> None:
    data = ofx_sample(2_000)
    assert len(data) > 250_000
    with intake(files, 10 * 1024 * 1024) as into:
        up = parse(into, {"file": (io.BytesIO(data), "year.ofx"), "account_id": ACCOUNT})
        into.finish()
        into.store()
        into.keep()
    assert (up.file_name, up.account_id) == ("year.ofx", ACCOUNT)
    assert into.size == len(data) and into.sniffed == "ofx"
    assert files.objects == {"imports/u1/i1.ofx": data}
    # Never the whole file at once: the first 8 KiB (to sniff the format), then the reads.
    assert max(len(c) for c in files.writers[0].chunks) < 8192 + READ_SIZE


def test_exactly_the_limit_passes_and_one_byte_more_is_413_with_nothing_stored(
    files: InMemoryStatementFiles,
) -> None:
    with intake(files) as into:
        parse(into, {"file": (io.BytesIO(b"a;b\n" * (LIMIT // 4)), "s.csv")})
        into.finish()
        into.store()
        into.keep()
    assert len(files.objects["imports/u1/i1.csv"]) == LIMIT
    files = InMemoryStatementFiles()
    with pytest.raises(DomainError) as error, intake(files) as into:
        parse(into, {"file": (io.BytesIO(b"a;b\n" * (LIMIT // 4) + b"x"), "s.csv")})
    assert status_of(error) == (413, [])
    assert files.objects == {} and files.writers[0].aborted


def test_a_body_that_cannot_hold_a_file_within_the_limit_is_refused_unread(
    files: InMemoryStatementFiles,
) -> None:
    body = b"x" * (LIMIT + FORM_OVERHEAD + 1)
    with pytest.raises(DomainError) as error, intake(files) as into:
        parse(into, input_stream=io.BytesIO(body), headers={"Content-Length": str(len(body))})
    assert status_of(error) == (413, [])
    assert files.writers == []


def test_form_limits_are_422s_naming_the_problem_not_413s(files: InMemoryStatementFiles) -> None:
    two = {"file": [(io.BytesIO(b"a;b\n"), "1.csv"), (io.BytesIO(b"a;b\n"), "2.csv")]}
    with pytest.raises(DomainError) as error, intake(files) as into:
        parse(into, two)
    assert status_of(error) == (422, ["file"])
    many = {f"f{i}": "x" for i in range(MAX_PARTS + 1)}
    with pytest.raises(DomainError) as error, intake(InMemoryStatementFiles()) as into:
        parse(into, many)
    assert status_of(error) == (422, ["body"])
    with pytest.raises(DomainError) as error, intake(InMemoryStatementFiles()) as into:
        parse(into, {"mapping": "x" * (64 * 1024 + 1)})
    assert status_of(error) == (422, ["body"])
    with pytest.raises(DomainError) as error, intake(InMemoryStatementFiles()) as into:
        parse(into, {"other": (io.BytesIO(b"a;b\n"), "x.csv")})
    assert status_of(error) == (422, ["other"])


def test_a_binary_file_is_refused_before_anything_is_stored(files: InMemoryStatementFiles) -> None:
    pdf = b"%PDF-1.7\n" + b"\x00" * 50_000
    with pytest.raises(DomainError) as error, intake(files) as into:
        parse(into, {"file": (io.BytesIO(pdf), "s.pdf")})
    assert status_of(error) == (415, [])
    assert files.writers == [] and files.objects == {}


def test_an_idempotent_replay_stores_nothing(files: InMemoryStatementFiles) -> None:
    prior: Any = object()
    with Intake(files, "imports/u1/other", LIMIT, "i1", prior) as into:
        parse(into, {"file": (io.BytesIO(b"a;b\n" * 10_000), "s.csv")})
        into.finish()
    assert files.writers == [] and into.size == 40_000


@pytest.fixture(autouse=True)
def _no_leftovers(files: InMemoryStatementFiles) -> Iterator[None]:
    yield
    for writer in files.writers:
        assert writer.aborted or writer.name in files.objects or not writer.chunks
