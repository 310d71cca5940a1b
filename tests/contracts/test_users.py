"""The UserStore port: users, credentials and tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from valorize.bootstrap import Services
from valorize.domain.errors import Conflict
from valorize.domain.model import ApiToken, Category, CategoryType, Color, User
from valorize.service.ports import IdempotencyRecord, IdempotentReplay


def default_categories() -> tuple[Category, ...]:
    return tuple(
        Category(new_id(), name, Color.RED, CategoryType.EXPENSE, None, None, True, NOW, NOW)
        for name in ("Alimentação", "Moradia")
    )


def test_a_registration_is_all_or_nothing(services: Services, make: Make) -> None:
    store = services.user_store
    categories = default_categories()
    uid = make.user("ana@example.com", categories)
    user = store.get_user(uid)
    assert user is not None and user.email == "ana@example.com"
    assert store.find_credentials("ana@example.com") == (uid, "hash")
    assert store.find_credentials("bob@example.com") is None
    found = services.category_store.list_categories(uid, 10, None).items
    assert sorted(c.id for c in found) == sorted(c.id for c in categories)
    # The same email again: nothing of the second registration is written.
    clash = User(new_id(), "ana@example.com", "Other", "BRL", "pt-BR", NOW)
    token = ApiToken(new_id(), clash.id, "default", NOW)
    with pytest.raises(Conflict):
        store.create_user(clash, "h2", default_categories(), token, "s2")
    assert store.get_user(clash.id) is None and store.get_token(token.id) is None
    assert services.category_store.list_categories(clash.id, 10, None).items == []
    assert store.find_credentials("ana@example.com") == (uid, "hash")


def test_tokens(services: Services, make: Make) -> None:
    store = services.user_store
    uid, other = make.user(), make.user()
    first, *_ = store.list_tokens(uid)  # the registration's
    later = ApiToken(new_id(), uid, "cli", NOW + timedelta(days=1), NOW + timedelta(days=30))
    store.add_token(later, "later-hash")
    assert store.get_token(later.id) == (later, "later-hash")
    assert [t.id for t in store.list_tokens(uid)] == [later.id, first.id]  # newest first
    used = NOW + timedelta(days=2)
    store.touch_token(later.id, used)
    assert store.get_token(later.id) == (replace(later, last_used_at=used), "later-hash")
    for bad in (".", "..", "__x__", "a/b", "F" * 32, ""):
        assert store.get_token(bad) is None
    assert store.delete_token(other, later.id) is False  # not theirs
    assert store.delete_token(uid, later.id) is True
    assert store.delete_token(uid, later.id) is False
    assert store.get_token(later.id) is None
    store.touch_token(later.id, used)  # revoked meanwhile: nothing to record


def test_the_idempotency_record_commits_with_the_token(services: Services, make: Make) -> None:
    uid = make.user()
    record = IdempotencyRecord("t" * 64, "fp", 201, {}, datetime(2100, 1, 1, tzinfo=UTC))
    services.user_store.add_token(ApiToken(new_id(), uid, "a", NOW), "h", record)
    again = ApiToken(new_id(), uid, "b", NOW)
    with pytest.raises(IdempotentReplay):
        services.user_store.add_token(again, "h", record)
    assert services.user_store.get_token(again.id) is None
