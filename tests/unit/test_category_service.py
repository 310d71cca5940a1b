"""CategoryService over the in-memory store: unique names, parents, guarded deletion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from tests.unit.conftest import OTHER, USER, World
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.model import CategoryType, Color
from valorize.service.requests import CreateCategory, UpdateCategory, UpdateTransaction


def field_of(e: pytest.ExceptionInfo[ValidationFailed]) -> str:
    return e.value.errors[0].field


def test_create_and_get(world: World) -> None:
    cat = world.categories.create(
        USER, CreateCategory(name="Pets", color=Color.PEACH, description="Food and vet")
    )
    assert cat.type is CategoryType.EXPENSE and not cat.is_default
    assert world.categories.get(USER, cat.id) == cat
    with pytest.raises(NotFound):
        world.categories.get(OTHER, cat.id)


@pytest.mark.parametrize("clash", ["food", "FOOD", "  Food ", "fOOd"])
def test_names_are_unique_per_user_case_and_space_insensitive(world: World, clash: str) -> None:
    world.category(name="Food")
    with pytest.raises(Conflict, match="already exists"):
        world.category(name=clash)
    assert world.category(OTHER, name=clash)  # other users are free to use it


def test_inner_spaces_count_as_one(world: World) -> None:
    world.category(name="Eating Out")
    with pytest.raises(Conflict):
        world.category(name="eating   out")


def test_rename_to_a_taken_name_is_a_conflict(world: World) -> None:
    world.category(name="Food")
    other = world.category(name="Fun")
    with pytest.raises(Conflict):
        world.categories.update(USER, other.id, UpdateCategory(name=" FOOD"))
    assert world.categories.get(USER, other.id).name == "Fun"


def test_rename_frees_the_old_name_and_may_change_case(world: World) -> None:
    cat = world.category(name="Food")
    world.clock.advance(timedelta(minutes=1))
    same = world.categories.update(USER, cat.id, UpdateCategory(name="FOOD"))
    assert same.name == "FOOD" and same.updated_at == world.clock.now()
    world.categories.update(USER, cat.id, UpdateCategory(name="Groceries"))
    assert world.category(name="food")


@pytest.mark.parametrize("field", ["name", "color", "type"])
def test_required_fields_cannot_be_nulled(field: str) -> None:
    # Refused by the request itself, so that the OpenAPI document can say so (issue 12).
    with pytest.raises(ValidationError) as e:
        UpdateCategory.model_validate({field: None})
    assert e.value.errors()[0]["loc"] == (field,)


def test_list_pages_by_name_key(world: World) -> None:
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"]:
        world.category(name=name)
    first = world.categories.list(USER, 2, None)
    assert [c.name for c in first.items] == ["Alpha", "Bravo"]
    second = world.categories.list(USER, 2, first.next_cursor)
    assert [c.name for c in second.items] == ["charlie", "delta"]
    last = world.categories.list(USER, 2, second.next_cursor)
    assert [c.name for c in last.items] == ["echo"] and last.next_cursor is None


# --- parents -----------------------------------------------------------------------------------


def test_a_subcategory(world: World) -> None:
    parent = world.category(name="Food")
    child = world.category(name="Restaurants", parent_id=parent.id)
    assert child.parent_id == parent.id


def test_the_parent_must_be_the_users_own(world: World) -> None:
    foreign = world.category(OTHER, name="Food")
    with pytest.raises(ValidationFailed, match="no such category") as e:
        world.category(name="Restaurants", parent_id=foreign.id)
    assert field_of(e) == "parent_id"


def test_the_parent_must_have_the_same_type(world: World) -> None:
    income = world.category(name="Salary", type=CategoryType.INCOME)
    with pytest.raises(ValidationFailed) as e:
        world.category(name="Lunch", parent_id=income.id)
    assert field_of(e) == "parent_id"


def test_only_one_level_of_nesting(world: World) -> None:
    top = world.category(name="Food")
    mid = world.category(name="Restaurants", parent_id=top.id)
    with pytest.raises(ValidationFailed, match="subcategory") as e:
        world.category(name="Sushi", parent_id=mid.id)
    assert field_of(e) == "parent_id"


def test_a_category_cannot_be_its_own_parent(world: World) -> None:
    cat = world.category(name="Food")
    with pytest.raises(ValidationFailed, match="own parent") as e:
        world.categories.update(USER, cat.id, UpdateCategory(parent_id=cat.id))
    assert field_of(e) == "parent_id"


def test_no_cycles(world: World) -> None:
    a = world.category(name="A")
    b = world.category(name="B", parent_id=a.id)
    with pytest.raises(ValidationFailed):
        world.categories.update(USER, a.id, UpdateCategory(parent_id=b.id))


def test_reparent_and_unparent(world: World) -> None:
    a, b = world.category(name="A"), world.category(name="B")
    c = world.category(name="C", parent_id=a.id)
    assert world.categories.update(USER, c.id, UpdateCategory(parent_id=b.id)).parent_id == b.id
    assert world.categories.update(USER, c.id, UpdateCategory(parent_id=None)).parent_id is None


def test_a_parent_cannot_become_a_subcategory(world: World) -> None:
    top = world.category(name="Food")
    world.category(name="Restaurants", parent_id=top.id)
    other = world.category(name="Living")
    with pytest.raises(ValidationFailed):
        world.categories.update(USER, top.id, UpdateCategory(parent_id=other.id))


def test_a_subcategory_cannot_change_type_away_from_its_parent(world: World) -> None:
    top = world.category(name="Food")
    child = world.category(name="Restaurants", parent_id=top.id)
    with pytest.raises(ValidationFailed):
        world.categories.update(USER, child.id, UpdateCategory(type=CategoryType.INCOME))


def test_a_parent_cannot_change_type_away_from_its_children(world: World) -> None:
    top = world.category(name="Food")
    world.category(name="Restaurants", parent_id=top.id)
    with pytest.raises(ValidationFailed):
        world.categories.update(USER, top.id, UpdateCategory(type=CategoryType.INCOME))


# --- deletion ----------------------------------------------------------------------------------


def test_delete_an_unused_category(world: World) -> None:
    cat = world.category(name="Food")
    world.categories.delete(USER, cat.id, None, False)
    with pytest.raises(NotFound):
        world.categories.get(USER, cat.id)
    assert world.category(name="food")  # the name is free again


def test_delete_in_use_is_a_conflict(world: World) -> None:
    account = world.account()
    cat = world.category(name="Food")
    world.txn(account.id, -100, category_id=cat.id)
    with pytest.raises(Conflict, match="reassign_to"):
        world.categories.delete(USER, cat.id, None, False)
    assert world.categories.get(USER, cat.id)


def test_delete_in_use_by_a_split_is_a_conflict(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    world.txn(account.id, -100, splits=[(a.id, -60), (b.id, -40)])
    with pytest.raises(Conflict):
        world.categories.delete(USER, b.id, None, False)


def test_delete_and_reassign(world: World) -> None:
    account = world.account()
    old, new, other = (world.category(name=n) for n in ("Old", "New", "Other"))
    plain = world.txn(account.id, -100, category_id=old.id)
    split = world.txn(account.id, -100, splits=[(old.id, -60), (other.id, -40)])
    world.categories.delete(USER, old.id, new.id, False)
    assert world.transactions.get(USER, plain.id).category_id == new.id
    moved = world.transactions.get(USER, split.id)
    assert [s.category_id for s in moved.splits] == [new.id, other.id]
    assert not world.category_store.category_in_use(USER, old.id)
    assert world.category_store.category_in_use(USER, new.id)


def test_delete_and_uncategorize(world: World) -> None:
    account = world.account()
    cat = world.category(name="Food")
    t = world.txn(account.id, -100, category_id=cat.id)
    world.categories.delete(USER, cat.id, None, True)
    assert world.transactions.get(USER, t.id).category_id is None
    with pytest.raises(NotFound):
        world.categories.get(USER, cat.id)


def test_a_split_transaction_stays_editable_after_uncategorize(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    t = world.txn(account.id, -100, splits=[(a.id, -60), (b.id, -40)])
    world.categories.delete(USER, a.id, None, True)
    world.transactions.update(USER, t.id, UpdateTransaction(notes="still editable"))


def test_reassign_rules(world: World) -> None:
    cat = world.category(name="Food")
    foreign = world.category(OTHER, name="Theirs")
    with pytest.raises(ValidationFailed) as e:
        world.categories.delete(USER, cat.id, cat.id, False)
    assert field_of(e) == "reassign_to"
    with pytest.raises(ValidationFailed) as e:
        world.categories.delete(USER, cat.id, foreign.id, False)
    assert field_of(e) == "reassign_to"
    with pytest.raises(ValidationFailed) as e:
        world.categories.delete(USER, cat.id, foreign.id, True)
    assert field_of(e) == "reassign_to"
    with pytest.raises(NotFound):
        world.categories.delete(OTHER, cat.id, None, True)


def test_children_outlive_their_parent(world: World) -> None:
    top = world.category(name="Food")
    child = world.category(name="Restaurants", parent_id=top.id)
    world.categories.delete(USER, top.id, None, False)
    assert world.categories.get(USER, child.id).parent_id is None
