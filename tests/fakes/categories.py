"""The CategoryStore port in memory (adapters/firestore/categories.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tests.fakes.memory import Memory
from valorize.domain import ids
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.model import Category
from valorize.service.ports import IdempotencyRecord, PageResult


class InMemoryCategories:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None:
        self.memory.check_idem(user_id, idem)
        space = self.memory.space(user_id)
        if category.name_key in space.category_names or category.id in space.categories:
            raise Conflict(f"a category named {category.name!r} already exists")
        space.categories[category.id] = category
        space.category_names[category.name_key] = category.id
        self.memory.save_idem(user_id, idem)
        self.memory.writes += 1

    def get_category(self, user_id: str, category_id: str) -> Category | None:
        return self.memory.space(user_id).categories.get(category_id)

    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]:
        categories = self.memory.space(user_id).categories
        return {i: categories[i] for i in dict.fromkeys(ids) if i in categories}

    def list_categories(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        rows = sorted(self.memory.space(user_id).categories.values(), key=lambda c: c.name_key)
        if cursor:
            after = decode_cursor(cursor, ids.NAME_KEY_CURSOR)
            rows = [c for c in rows if c.name_key > after]
        page = rows[: limit + 1]
        items = page[:limit]
        nxt = encode_cursor(items[-1].name_key) if len(page) > limit else None
        return PageResult(items, nxt)

    def update_category(self, user_id: str, old: Category, new: Category) -> None:
        space = self.memory.space(user_id)
        stored = space.categories.get(old.id)
        if stored is None:
            raise NotFound("category not found")
        # The name record to free is the stored one (a concurrent rename may have moved it).
        if stored.name_key != new.name_key and new.name_key in space.category_names:
            raise Conflict(f"a category named {new.name!r} already exists")
        if stored.name_key != new.name_key:
            del space.category_names[stored.name_key]
            space.category_names[new.name_key] = new.id
        space.categories[old.id] = new
        self.memory.writes += 1

    def has_children(self, user_id: str, category_id: str) -> bool:
        return any(
            c.parent_id == category_id for c in self.memory.space(user_id).categories.values()
        )

    def category_in_use(self, user_id: str, category_id: str) -> bool:
        return any(
            category_id in t.category_ids for t in self.memory.space(user_id).transactions.values()
        )

    def delete_category(self, user_id: str, category: Category, replacement_id: str | None) -> None:
        space = self.memory.space(user_id)
        cid = category.id
        before = [t for t in space.transactions.values() if cid in t.category_ids]
        after = [
            replace(
                t,
                category_id=replacement_id if t.category_id == cid else t.category_id,
                splits=tuple(
                    replace(s, category_id=replacement_id) if s.category_id == cid else s
                    for s in t.splits
                ),
            )
            for t in before
        ]
        self.memory.post(user_id, before, after, missing="", check_limits=False)
        # Subcategories outlive their parent as top-level categories.
        for child in [c for c in space.categories.values() if c.parent_id == cid]:
            space.categories[child.id] = replace(child, parent_id=None)
        space.categories.pop(cid, None)
        space.category_names.pop(category.name_key, None)
        # A category's envelope goes with it.
        space.budgets.pop(cid, None)
