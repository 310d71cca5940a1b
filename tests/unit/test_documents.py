"""The stored transaction: a read asks for every field it is made from, and not for the
fields derived for the indexes (the search tokens are most of the document)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from valorize.adapters.firestore.documents import (
    MAGNITUDE,
    SEARCH_TOKENS,
    TXN_FIELDS,
    txn_doc,
    txn_of,
)
from valorize.domain.model import Split, Transaction

NOW = datetime(2025, 5, 1, tzinfo=UTC)


def test_a_read_asks_for_every_stored_field_but_the_derived_ones() -> None:
    t = Transaction(
        id="t1",
        account_id="a1",
        amount=-12_345,
        currency="BRL",
        date=date(2025, 5, 2),
        description="PAG*UBER TRIP 1234 SAO PAULO BR",
        category_id=None,
        notes="n",
        splits=(Split("c1", -10_000, "x"), Split("c2", -2_345, None)),
        created_at=NOW,
        updated_at=NOW,
    )
    stored = txn_doc(t)
    assert set(TXN_FIELDS) == set(stored) - {MAGNITUDE, SEARCH_TOKENS}
    assert len(TXN_FIELDS) == len(set(TXN_FIELDS))
    # What the projection brings back is enough to rebuild it.
    assert txn_of(t.id, {k: stored[k] for k in TXN_FIELDS}) == t
    assert len(stored[SEARCH_TOKENS]) > 3 * len(TXN_FIELDS)
