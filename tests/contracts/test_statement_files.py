"""The StatementFiles port (service/ports/imports.py): the fake (tests/fakes/imports.py)
and the Cloud Storage adapter (adapters/statement_files.py) on the storage emulator.

Objects are named as the upload names them (`imports/{uid}/{id}.{ext}`, service/imports/
upload.py), each test under users of its own, so the tests share the emulator's bucket
and nothing else."""

from __future__ import annotations

import uuid

import pytest

from tests import fakes
from tests.contracts.conftest import new_id
from valorize import bootstrap
from valorize.config import Settings
from valorize.service.ports.imports import StatementFileMissing, StatementFiles

MIB = 1024 * 1024


@pytest.fixture(params=["fake", pytest.param("storage", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files(backend: str, request: pytest.FixtureRequest) -> StatementFiles:
    if backend == "fake":
        return fakes.build().statement_files
    host: str = request.getfixturevalue("storage_emulator")
    settings = Settings(project=f"contract-{uuid.uuid4().hex[:20]}", storage_emulator_host=host)
    return bootstrap.build(settings).statement_files


def name(uid: str | None = None, ext: str = "csv") -> str:
    return f"imports/{uid or new_id()}/{new_id()}.{ext}"


def store(files: StatementFiles, object_name: str, *chunks: bytes) -> None:
    writer = files.create(object_name, "text/csv")
    for chunk in chunks:
        writer.write(chunk)
    writer.close()


def read(files: StatementFiles, object_name: str) -> bytes:
    with files.open(object_name) as stream:
        return stream.read()


def test_a_stored_statement_reads_back_as_written(files: StatementFiles) -> None:
    csv = name()
    store(files, csv, b"date;amount;description\n", "2024-01-10;-12,50;Caf\u00e9\n".encode())
    assert read(files, csv) == "date;amount;description\n2024-01-10;-12,50;Caf\u00e9\n".encode()
    ofx = name(ext="ofx")
    store(files, ofx, b"OFXHEADER:100\r\n\x00\xff")  # bytes as sent, not text
    assert read(files, ofx) == b"OFXHEADER:100\r\n\x00\xff"


def test_a_multi_mib_statement_streams_both_ways(files: StatementFiles) -> None:
    # Not a multiple of the adapter's 1 MiB chunks either way, written in pieces the size
    # of request-body chunks, read in the parser's 64 KiB reads (domain/statements/api.py).
    data = bytes(range(251)) * (3 * MIB // 251 + 1000)
    big = name()
    piece = 64 * 1024 + 7
    store(files, big, *(data[i : i + piece] for i in range(0, len(data), piece)))
    got = bytearray()
    with files.open(big) as stream:
        while chunk := stream.read(64 * 1024):
            assert len(chunk) <= 64 * 1024
            got += chunk
        assert stream.read(64 * 1024) == b""  # at the end, and stays there
    assert len(got) == len(data) and got == data


def test_an_empty_statement_is_an_empty_object(files: StatementFiles) -> None:
    empty = name()
    store(files, empty)
    assert read(files, empty) == b""


def test_nothing_exists_before_close(files: StatementFiles) -> None:
    pending = name()
    writer = files.create(pending, "text/csv")
    writer.write(b"a;b\n" * 1000)
    with pytest.raises(StatementFileMissing), files.open(pending):
        pass
    writer.close()
    assert read(files, pending) == b"a;b\n" * 1000


@pytest.mark.parametrize("size", [10, 2 * MIB + 3], ids=["small", "past-a-chunk"])
def test_an_aborted_upload_leaves_no_object(files: StatementFiles, size: int) -> None:
    # Past a chunk, the adapter has sent part of the object already (a resumable session).
    aborted = name()
    writer = files.create(aborted, "text/csv")
    writer.write(b"x" * size)
    writer.abort()
    with pytest.raises(StatementFileMissing), files.open(aborted):
        pass


def test_abort_before_any_write_never_raises(files: StatementFiles) -> None:
    aborted = name()
    files.create(aborted, "text/csv").abort()
    with pytest.raises(StatementFileMissing), files.open(aborted):
        pass


def test_a_missing_statement_is_statement_file_missing(files: StatementFiles) -> None:
    uid = new_id()
    with pytest.raises(StatementFileMissing), files.open(name(uid)):
        pass
    stored = name(uid)
    store(files, stored, b"a")
    # A prefix of a stored name, or the user's folder, is no object.
    for missing in (stored.rsplit(".", 1)[0], f"imports/{uid}", f"imports/{uid}/"):
        with pytest.raises(StatementFileMissing), files.open(missing):
            pass


def test_deleted_statements_are_missing_and_delete_is_idempotent(files: StatementFiles) -> None:
    gone = name()
    store(files, gone, b"a;b\n")
    files.delete(gone)
    with pytest.raises(StatementFileMissing), files.open(gone):
        pass
    files.delete(gone)  # again: nothing to delete is no error
    files.delete(name())  # never stored


def test_names_are_per_user(files: StatementFiles) -> None:
    # The same object id under two users (an id from an Idempotency-Key is per user).
    object_id = new_id()
    ana, bia = (f"imports/{new_id()}/{object_id}.csv" for _ in range(2))
    store(files, ana, b"ana")
    store(files, bia, b"bia")
    assert (read(files, ana), read(files, bia)) == (b"ana", b"bia")
    files.delete(ana)
    with pytest.raises(StatementFileMissing), files.open(ana):
        pass
    assert read(files, bia) == b"bia"


def test_a_name_stored_again_holds_the_last_file(files: StatementFiles) -> None:
    # Uploads name objects per attempt, so this is not relied on; both backends replace.
    again = name()
    store(files, again, b"first, longer")
    store(files, again, b"second")
    assert read(files, again) == b"second"


def test_the_stream_is_closed_with_its_context(files: StatementFiles) -> None:
    stored = name()
    store(files, stored, b"a;b\n")
    with files.open(stored) as stream:
        assert stream.read(2) == b"a;"
    with pytest.raises(ValueError):
        stream.read()
