"""The forms of ids and cursors (domain/ids.py): every issuer's ids fit its form, and nothing
a form accepts can be anything but one Firestore document id."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.unit.conftest import World
from valorize.adapters.system import Uuid7Ids
from valorize.domain import ids
from valorize.domain import imports as imp
from valorize.domain.errors import Unauthorized, ValidationFailed
from valorize.domain.model import category_name_key
from valorize.domain.notifications import notification_id
from valorize.domain.recurrence import occurrence_id
from valorize.service.requests import CreateTransaction, ListTransactions

FAST = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
ID_FORMS = [ids.ENTITY, ids.TRANSACTION, ids.IMPORT, ids.ROW, ids.NOTIFICATION]
HOSTILE = ["", ".", "..", "/", "a/b", "__x__", "__main__", "%2F", "F" * 32, "0" * 31, "\x00"]
HEX = st.from_regex(r"\A[0-9a-f]{32}\Z")


def firestore_safe(value: str) -> bool:
    """Firestore's rules for a document id (besides being valid UTF-8)."""
    return (
        "/" not in value
        and value not in (".", "..")
        and re.fullmatch(r"__.*__", value, re.DOTALL) is None
        and 0 < len(value.encode()) <= 1500
    )


@FAST
@given(st.text() | st.sampled_from(HOSTILE) | st.from_regex(r"\A(rec-|k)?[0-9a-f._/-]{0,40}\Z"))
def test_whatever_a_form_accepts_is_one_safe_document_id(value: str) -> None:
    if any(form.matches(value) for form in ID_FORMS):
        assert firestore_safe(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_fit_no_form(value: str) -> None:
    assert not any(form.matches(value) for form in ID_FORMS)


def test_ids_the_api_issues_fit_their_forms() -> None:
    uuid7 = Uuid7Ids().new_id()
    assert ids.ENTITY.matches(uuid7)
    assert ids.ENTITY.matches(imp.transaction_id(uuid7, "000-0000001"))
    assert ids.ENTITY.matches(imp.created_account_id(uuid7, 3))
    assert ids.TRANSACTION.matches(uuid7)
    assert ids.TRANSACTION.matches(occurrence_id(uuid7, date(2025, 1, 31)))
    assert ids.IMPORT.matches(uuid7)
    assert ids.IMPORT.matches(imp.import_id_for_key(uuid7, "a key/with ../ anything"))
    assert ids.ROW.matches(imp.row_id(0, 1)) and ids.ROW.matches(imp.row_id(1234, 12_345_678))
    for cause in (
        ("lowbal", uuid7, "2025-01-31"),
        ("large", occurrence_id(uuid7, date(2025, 1, 31))),
        ("overspent", uuid7, "2025-01"),
        ("recurrence", uuid7, "2025-01-01", "2025-03-01"),
        ("import", uuid7, "ready"),
        ("month-summary", "2025-01"),
    ):
        assert ids.NOTIFICATION.matches(notification_id(*cause)), cause


def test_cursors_the_api_returns_fit_their_forms() -> None:
    uuid7 = Uuid7Ids().new_id()
    assert ids.TRANSACTION_CURSOR.matches(f"2025-01-31#{uuid7}")
    assert ids.TRANSACTION_CURSOR.matches(f"2025-01-31#{occurrence_id(uuid7, date(2025, 1, 31))}")
    assert ids.NOTIFICATION_CURSOR.matches(f"2025-01-31T10:00:00.000123Z#import-{uuid7}-ready")
    assert ids.RULE_CURSOR.matches(f"{1_000_000:07d}#{uuid7}")
    assert ids.DUE_CURSOR.matches(f"2025-01-31|users/{uuid7}/recurrences/{uuid7}")
    assert not ids.DUE_CURSOR.matches(f"2025-01-31|users/{uuid7}/../../x/{uuid7}")
    assert not ids.TRANSACTION_CURSOR.matches("2025-01-31#__main__")
    # A Unicode digit is a digit to \\d, not to a form.
    assert not ids.TRANSACTION_CURSOR.matches(f"٢٠٢٥-01-31#{uuid7}")


@FAST
@given(st.text(min_size=1))
def test_name_key_cursors_are_the_keys_names_have(name: str) -> None:
    key = category_name_key(name)
    assert ids.NAME_KEY_CURSOR.matches(key) == bool(key)
    if key != name:
        assert not ids.NAME_KEY_CURSOR.matches(name)


@FAST
@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_any_text_has_a_key(text: str) -> None:
    assert re.fullmatch("[0-9a-f]{64}", ids.key_of(text))


@FAST
@given(st.text())
def test_cursors_round_trip(text: str) -> None:
    cursor = ids.encode_cursor(text)
    assert "=" not in cursor
    assert ids.decode_cursor(cursor, ids.Form("(?s:.*)")) == text


@pytest.mark.parametrize("cursor", ["!!", "%2F", "", "YQ", ids.encode_cursor("__name__")])
def test_a_cursor_of_another_form_is_a_422_on_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as e:
        ids.decode_cursor(cursor, ids.ENTITY)
    assert [f.field for f in e.value.errors] == ["cursor"]


@pytest.mark.parametrize("value", HOSTILE[1:])
def test_bodies_and_queries_refuse_ids_the_api_did_not_issue(value: str) -> None:
    body = {"account_id": value, "amount": 1, "date": "2025-01-01", "description": "x"}
    with pytest.raises(ValidationError) as e:
        CreateTransaction.model_validate_json(json.dumps(body))
    assert [err["loc"] for err in e.value.errors()] == [("account_id",)]
    with pytest.raises(ValidationError):
        ListTransactions.model_validate({"import_id": value})
    assert ListTransactions.model_validate({"import_id": "k" + "0" * 31}).import_id


@pytest.mark.parametrize("token_id", [".", "..", "__main__", "a/b", "%2F", "F" * 32, "0" * 33, ""])
def test_a_token_id_of_another_form_is_refused_before_any_lookup(
    world: World, monkeypatch: pytest.MonkeyPatch, token_id: str
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(world.user_store, "get_token", asked.append)
    with pytest.raises(Unauthorized, match="invalid token"):
        world.auth.authenticate(f"vz_{token_id}_secret")
    assert asked == []
