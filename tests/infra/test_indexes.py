"""Every query the transaction list can send has its composite index in infra/cdktf/config.py.

The shapes come from the adapter itself: every combination of the filter's fields (each
absent or set, the text short and long), with and without a cursor, goes through
adapters/firestore/ledger.py `list_query`, and the index each needs is derived from the
StructuredQuery it builds, by Firestore's rules: the equality and array-contains fields lead
(in any order), then the query's order, then the fields of inequality filters it does not
order by (by name, in the direction of the last order). A filter field added to
TransactionFilter fails `test_every_filter_field_is_exercised` until it has sample values
here. No emulator: a query is built, never sent.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.query import Query
from google.cloud.firestore_v1.types import StructuredQuery

from tests.infra import load_config
from valorize.adapters.firestore.ledger import list_query
from valorize.domain.search import TextQuery
from valorize.service.ports.ledger import TransactionFilter

ID = "0" * 32
# Values each filter field takes besides None: every branch of list_query.
SAMPLES: dict[str, tuple[Any, ...]] = {
    "account_id": (ID,),
    "category_id": (ID,),
    "date_from": ("2024-01-01",),
    "date_to": ("2024-12-31",),
    "type": ("debit",),
    "import_id": (ID,),
    "min_magnitude": (100,),
    "max_magnitude": (5_000,),
    "text": (TextQuery.of("pã"), TextQuery.of("Padaria")),  # a bigram token; a trigram
}
# Checked on what the query returns, never part of it.
UNINDEXED = {"predicate"}

Op = StructuredQuery.FieldFilter.Operator
EQUALITIES = {Op.EQUAL: "ASCENDING", Op.IN: "ASCENDING"}
ARRAYS = {Op.ARRAY_CONTAINS, Op.ARRAY_CONTAINS_ANY}
RANGES = {
    Op.LESS_THAN,
    Op.LESS_THAN_OR_EQUAL,
    Op.GREATER_THAN,
    Op.GREATER_THAN_OR_EQUAL,
    Op.NOT_EQUAL,
    Op.NOT_IN,
}
# (path, "ASCENDING" | "DESCENDING" | "CONTAINS")
Field = tuple[str, str]
Shape = tuple[frozenset[Field], tuple[Field, ...]]


cfg = load_config()


def filters() -> Iterator[TransactionFilter]:
    names = list(SAMPLES)
    for values in itertools.product(*((None, *SAMPLES[n]) for n in names)):
        yield TransactionFilter(**dict(zip(names, values, strict=True)))


def queries() -> Iterator[Query]:
    client = firestore.Client(project="indexes", credentials=AnonymousCredentials())
    transactions = client.collection("users").document(ID).collection("transactions")
    for flt in filters():
        for position in (None, f"2024-06-01#{ID}"):
            yield list_query(transactions, flt, position)


def _leaves(where: StructuredQuery.Filter) -> Iterator[StructuredQuery.FieldFilter]:
    if "composite_filter" in where:
        for sub in where.composite_filter.filters:
            yield from _leaves(sub)
    elif "field_filter" in where:
        yield where.field_filter
    else:
        raise AssertionError(f"a filter the index rules here do not cover: {where}")


def shape(q: Query) -> Shape:
    """The index a query needs: (its equality fields, the fields that follow in order)."""
    pb = q._to_protobuf()
    leading: set[Field] = set()
    ranged: set[str] = set()
    for f in _leaves(pb.where) if "where" in pb else ():
        path = f.field.field_path
        if f.op in EQUALITIES:
            leading.add((path, EQUALITIES[f.op]))
        elif f.op in ARRAYS:
            leading.add((path, "CONTAINS"))
        else:
            assert f.op in RANGES, f.op
            ranged.add(path)
    order = [(o.field.field_path, StructuredQuery.Direction(o.direction).name) for o in pb.order_by]
    last = order[-1][1] if order else "ASCENDING"
    order += [(path, last) for path in sorted(ranged - {p for p, _ in order})]
    return frozenset(leading), tuple(order)


def declared() -> set[Shape]:
    shapes = set()
    for spec in cfg.FIRESTORE_INDEXES:
        if spec.collection != "transactions":
            continue
        fields = [(f.path, "CONTAINS" if f.array_contains else f.order) for f in spec.fields]
        # Equality fields come first; the trailing ones are the sort_key order and ranges.
        at = next(i for i, (path, _) in enumerate(fields) if path in ("sort_key", "date"))
        shapes.add((frozenset(fields[:at]), tuple(fields[at:])))
    return shapes


def automatic(s: Shape) -> bool:
    """Served by Firestore's automatic single-field index."""
    leading, order = s
    return not leading and len(order) == 1


def test_every_filter_field_is_exercised() -> None:
    fields = {f.name for f in dataclasses.fields(TransactionFilter)}
    assert fields == set(SAMPLES) | UNINDEXED


def test_every_list_query_has_its_composite_index() -> None:
    needed = {shape(q) for q in queries()}
    missing = {s for s in needed if not automatic(s)} - declared()
    assert not missing, sorted(missing, key=str)


def test_every_declared_transaction_index_is_used() -> None:
    needed = {shape(q) for q in queries()}
    window = (frozenset({("account_id", "ASCENDING")}), (("date", "DESCENDING"),))
    # The import worker's duplicate window (adapters/firestore/imports.py) is not a list's.
    assert declared() - needed == {window}


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (TransactionFilter(), ((), (("sort_key", "DESCENDING"),))),
        (
            TransactionFilter(category_id=ID, text=TextQuery.of("café"), min_magnitude=1),
            (
                (("search_tokens", "CONTAINS"),),
                (("sort_key", "DESCENDING"), ("magnitude", "DESCENDING")),
            ),
        ),
    ],
)
def test_the_shape_rules_read_the_query(flt: TransactionFilter, index: Any) -> None:
    client = firestore.Client(project="indexes", credentials=AnonymousCredentials())
    q = list_query(client.collection("transactions"), flt, None)
    assert shape(q) == (frozenset(index[0]), index[1])
