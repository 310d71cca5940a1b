"""Categories, their names unique per user (case-insensitive)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from valorize.domain.model import Category
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


class CategoryStore(Protocol):
    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None:
        """Conflict when the user has a category of that name."""
        ...

    def get_category(self, user_id: str, category_id: str) -> Category | None: ...
    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]: ...
    def list_categories(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        """By name (case-insensitive)."""
        ...

    def update_category(self, user_id: str, old: Category, new: Category) -> None:
        """Conflict when the new name is taken; NotFound when it is gone."""
        ...

    def category_in_use(self, user_id: str, category_id: str) -> bool:
        """Whether a transaction (or a split of one) is in it."""
        ...

    def has_children(self, user_id: str, category_id: str) -> bool: ...
    def delete_category(self, user_id: str, category: Category, replacement_id: str | None) -> None:
        """Move its transactions (and splits) to `replacement_id` or uncategorize them, with
        the read models; its subcategories become top-level; its envelope goes with it."""
        ...
