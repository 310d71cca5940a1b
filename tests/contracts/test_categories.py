"""The CategoryStore port."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from tests.contracts.test_ledger import consistent, every
from valorize.bootstrap import Services
from valorize.domain.budget import Budget
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.model import Category, Split


def test_categories_round_trip_and_names_are_unique(services: Services, make: Make) -> None:
    uid = make.user()
    food = make.category(uid, "Food ü", description="d")
    child = make.category(uid, "Snacks", parent_id=food.id)
    store = services.category_store
    assert store.get_category(uid, food.id) == food
    assert store.get_category(uid, new_id()) is None
    assert store.get_categories(uid, [child.id, new_id(), food.id]) == {
        food.id: food,
        child.id: child,
    }
    with pytest.raises(Conflict):
        make.category(uid, "FOOD Ü")  # the same name, whatever the case
    make.category(make.user(), "Food ü")  # another user's names are theirs
    assert store.has_children(uid, food.id) and not store.has_children(uid, child.id)


def test_categories_page_by_name(services: Services, make: Make) -> None:
    uid = make.user()
    for name in ("b", "A", "c", "D", "é"):
        make.category(uid, name)
    seen: list[Category] = []
    cursor = None
    while True:
        page = services.category_store.list_categories(uid, 2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [c.name for c in seen] == ["A", "b", "c", "D", "é"]
    with pytest.raises(ValidationFailed):
        services.category_store.list_categories(uid, 2, encode_cursor("Not Canonical"))


def test_a_rename_moves_the_name(services: Services, make: Make) -> None:
    uid = make.user()
    food, rent = make.category(uid, "Food"), make.category(uid, "Rent")
    store = services.category_store
    with pytest.raises(Conflict):
        store.update_category(uid, food, replace(food, name="rent"))
    assert store.get_category(uid, food.id) == food
    store.update_category(uid, food, replace(food, name="Groceries"))
    make.category(uid, "Food")  # the old name is free again
    with pytest.raises(Conflict):
        make.category(uid, "groceries")
    assert store.get_category(uid, rent.id) == rent
    with pytest.raises(NotFound):
        store.update_category(uid, replace(food, id=new_id()), food)


def test_deleting_a_category_moves_its_transactions(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    food, rent = make.category(uid, "Food"), make.category(uid, "Rent")
    snacks = make.category(uid, "Snacks", parent_id=food.id)
    plain = make.stored(uid, account, -100, category_id=food.id)
    split = make.stored(uid, account, -30, splits=(Split(food.id, -10), Split(rent.id, -20)))
    other = make.stored(uid, account, -7, category_id=rent.id)
    services.budget_store.add_budget(uid, Budget(food.id, food.id, "Food", "BRL", NOW, NOW))
    store = services.category_store
    assert store.category_in_use(uid, food.id) and store.category_in_use(uid, rent.id)
    assert not store.category_in_use(uid, snacks.id)

    store.delete_category(uid, food, rent.id)
    assert store.get_category(uid, food.id) is None
    after = {t.id: t for t in every(services, uid)}
    assert after[plain.id].category_id == rent.id
    assert [s.category_id for s in after[split.id].splits] == [rent.id, rent.id]
    assert after[other.id] == other
    child = store.get_category(uid, snacks.id)
    assert child is not None and child.parent_id is None  # now top-level
    assert services.budget_store.get_budget(uid, food.id) is None  # the envelope went too
    assert not store.category_in_use(uid, food.id)
    make.category(uid, "food")  # the name is free
    consistent(services, uid)

    store.delete_category(uid, rent, None)  # uncategorize
    assert all(not t.category_ids for t in every(services, uid))
    consistent(services, uid)
