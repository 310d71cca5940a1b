"""The BudgetStore port."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from valorize.bootstrap import Services
from valorize.domain.budget import Budget
from valorize.domain.errors import NotFound


def envelope(category_id: str, name: str = "Food") -> Budget:
    return Budget(category_id, category_id, name, "BRL", NOW, NOW)


def test_one_envelope_per_category(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.budget_store
    food = envelope(new_id())
    assert store.add_budget(uid, food) == (food, True)
    assert store.add_budget(uid, replace(food, name="Other")) == (food, False)
    assert store.get_budget(uid, food.id) == food
    assert store.get_budget(uid, new_id()) is None
    rent = envelope(new_id(), "Rent")
    store.add_budget(uid, rent)
    assert sorted(b.id for b in store.list_budgets(uid)) == sorted([food.id, rent.id])
    later = NOW + timedelta(days=1)
    renamed = store.rename_budget(uid, food.id, "Groceries", later)
    assert renamed == replace(food, name="Groceries", updated_at=later)
    assert store.get_budget(uid, food.id) == renamed
    with pytest.raises(NotFound):
        store.rename_budget(uid, new_id(), "x", later)
    assert store.delete_budget(uid, food.id) is True
    assert store.delete_budget(uid, food.id) is False
    assert store.list_budgets(uid) == [rent]


def test_incomes_merge_by_month(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.budget_store
    assert store.get_incomes(uid) == {}
    store.set_income(uid, "2025-01", 100)
    store.set_income(uid, "2025-02", 200)
    store.set_income(uid, "2025-01", 150)
    assert store.get_incomes(uid) == {"2025-01": 150, "2025-02": 200}


def test_allocations_are_written_as_decided(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.budget_store
    food, rent = envelope(new_id()), envelope(new_id(), "Rent")
    store.add_budget(uid, food)
    store.add_budget(uid, rent)
    store.set_income(uid, "2025-01", 1_000)
    seen: list[tuple[set[str], dict[str, int]]] = []

    def decide(budgets: dict[str, Budget], incomes: dict[str, int]) -> list[Budget]:
        seen.append((set(budgets), incomes))
        return [replace(budgets[food.id], allocations={"2025-01": 300})]

    assert store.change_allocations(uid, [food.id], decide) == [
        replace(food, allocations={"2025-01": 300})
    ]
    assert seen == [({food.id, rent.id}, {"2025-01": 1_000})]
    stored = store.get_budget(uid, food.id)
    assert stored is not None and stored.allocations == {"2025-01": 300}
    assert store.get_budget(uid, rent.id) == rent
    with pytest.raises(NotFound):
        store.change_allocations(uid, [food.id, new_id()], decide)
