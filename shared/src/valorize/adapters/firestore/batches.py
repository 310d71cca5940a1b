"""Bulk writes and reads: many batched writes with several in flight, their write protobufs
built directly, and query results decoded straight from protobuf.

An import stages, commits and reverts tens of thousands of documents. Two things bound how
fast: the round trips (a batch waits on the network, not on the CPU, so a few run at once)
and the client's generic encoder, which builds proto-plus wrappers field by field (about
1 ms per document on our machines, more than the emulator takes to store it). `Batches`
runs the batches; the `*_write` functions build the `Write` messages `batch.set`,
`batch.create`, `batch.update` and `batch.delete` would, for the plain types our documents
hold.
"""

from __future__ import annotations

import calendar
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.cloud import firestore
from google.cloud.firestore_v1.query import Query
from google.cloud.firestore_v1.types import common as common_types
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import write as write_types
from google.protobuf import timestamp_pb2

T = TypeVar("T")

# Firestore's limit per batch.
MAX_WRITES = 500
# Batches in flight at once.
IN_FLIGHT = 4

_ValuePb = document_types.Value.pb()
_MapValuePb = document_types.MapValue.pb()
_ArrayValuePb = document_types.ArrayValue.pb()
_DocumentPb = document_types.Document.pb()
_WritePb = write_types.Write.pb()
_PreconditionPb = common_types.Precondition.pb()
_DocumentMaskPb = common_types.DocumentMask.pb()


def _timestamp(value: datetime) -> Any:
    seconds = calendar.timegm(value.utctimetuple())
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=value.microsecond * 1000)


def value_pb(value: Any) -> Any:
    """A Firestore Value as a raw protobuf message."""
    if value is None:
        return _ValuePb(null_value=0)
    if value is True or value is False:
        return _ValuePb(boolean_value=value)
    if isinstance(value, int):
        return _ValuePb(integer_value=value)
    if isinstance(value, str):
        return _ValuePb(string_value=value)
    if isinstance(value, float):
        return _ValuePb(double_value=value)
    if isinstance(value, dict):
        return _ValuePb(map_value=_MapValuePb(fields={k: value_pb(v) for k, v in value.items()}))
    if isinstance(value, list | tuple):
        return _ValuePb(array_value=_ArrayValuePb(values=[value_pb(v) for v in value]))
    if isinstance(value, datetime):
        return _ValuePb(timestamp_value=_timestamp(value))
    raise TypeError(f"cannot encode a {type(value).__name__}")


def python_value(value: Any) -> Any:
    """A raw protobuf Firestore Value as Python (timestamps as aware datetimes)."""
    kind = value.WhichOneof("value_type")
    if kind == "map_value":
        return {k: python_value(v) for k, v in value.map_value.fields.items()}
    if kind == "array_value":
        return [python_value(v) for v in value.array_value.values]
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=UTC)
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def stream(db: firestore.Client, query: Query) -> Iterator[tuple[str, dict[str, Any]]]:
    """The query's documents as (id, fields), decoded straight from protobuf: the client's
    snapshots wrap every value field by field, which costs more than the emulator takes to
    send it (about half of reading an import's rows)."""
    request, _, _ = query._prep_stream()
    for response in db._firestore_api.run_query(request=request, metadata=db._rpc_metadata):
        pb = response._pb
        if pb.HasField("document"):
            doc = pb.document
            yield doc.name.rpartition("/")[2], {k: python_value(v) for k, v in doc.fields.items()}


def _document(path: str, doc: dict[str, Any]) -> Any:
    return _DocumentPb(name=path, fields={k: value_pb(v) for k, v in doc.items()})


def set_write(path: str, doc: dict[str, Any]) -> Any:
    """`batch.set(ref, doc)`: a full overwrite. `path`: the document's full name."""
    return _WritePb(update=_document(path, doc))


def create_write(path: str, doc: dict[str, Any]) -> Any:
    """`batch.create(ref, doc)`: fails the batch (AlreadyExists) if the document exists."""
    return _WritePb(update=_document(path, doc), current_document=_PreconditionPb(exists=False))


def update_write(path: str, fields: dict[str, Any]) -> Any:
    """`batch.update(ref, fields)` of top-level fields: fails the batch (NotFound) if the
    document does not exist."""
    return _WritePb(
        update=_document(path, fields),
        update_mask=_DocumentMaskPb(field_paths=list(fields)),
        current_document=_PreconditionPb(exists=True),
    )


def delete_write(path: str, update_time: Any) -> Any:
    """`batch.delete(ref, option=unchanged(snapshot))`: fails the batch (FailedPrecondition)
    if the document changed or went since it was read at `update_time`."""
    return _WritePb(
        delete=path, current_document=_PreconditionPb(update_time=update_time.timestamp_pb())
    )


def collection_prefix(col: firestore.CollectionReference) -> str:
    """The full name of the collection's documents up to their id:
    "projects/p/databases/(default)/documents/users/u/imports/i/rows/"."""
    path: str = col.document("_")._document_path
    return path[:-1]


class Batches:
    """Batched writes, up to `in_flight` at once: `submit` blocks while they are all busy (so
    a producer holds a few batches at most), `close` waits for the rest and raises the first
    failure. Each batch is atomic on its own; a failure leaves the batches that landed."""

    def __init__(self, db: firestore.Client, in_flight: int = IN_FLIGHT) -> None:
        self.db = db
        self.in_flight = in_flight
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="batches")
        self._running: deque[Future[int]] = deque()
        self.written = 0  # writes of the batches that landed (as the producer last saw)

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, writes: list[Any]) -> None:
        assert len(writes) <= MAX_WRITES
        while len(self._running) >= self.in_flight:
            self.written += self._running.popleft().result()
        self._running.append(self._pool.submit(self._commit, writes))

    def _commit(self, writes: list[Any]) -> int:
        batch = self.db.batch()
        batch._add_write_pbs(writes)
        batch.commit()
        return len(writes)

    def close(self) -> None:
        """Wait for every batch in flight (each lands or fails on its own); raise the first
        failure."""
        try:
            wait(self._running)
            while self._running:
                self.written += self._running.popleft().result()
        finally:
            self._running.clear()
            self._pool.shutdown(wait=True)


def groups(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive groups of `size` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
