"""Categories: CRUD with per-user unique names, the palette, and guarded deletion."""

from __future__ import annotations

from dataclasses import replace

from valorize.domain import ceilings
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.events import CategoryChanged
from valorize.domain.limits import check_ceiling
from valorize.domain.model import Category
from valorize.service.ports import (
    Clock,
    EventBus,
    IdempotencyMark,
    Ids,
    NullBus,
    PageResult,
)
from valorize.service.ports.categories import CategoryStore
from valorize.service.requests import CreateCategory, UpdateCategory


class CategoryService:
    def __init__(
        self,
        category_store: CategoryStore,
        clock: Clock,
        ids: Ids,
        bus: EventBus | None = None,
        *,
        max_categories: int = ceilings.MAX_CATEGORIES,
    ) -> None:
        self.max_categories = max_categories
        self.category_store = category_store
        self.clock = clock
        self.ids = ids
        self.bus: EventBus = bus or NullBus()

    def _check_parent(self, user_id: str, parent_id: str | None, child: Category) -> None:
        if parent_id is None:
            return
        if parent_id == child.id:
            raise ValidationFailed.on("parent_id", "a category cannot be its own parent")
        parent = self.category_store.get_category(user_id, parent_id)
        if parent is None:
            raise ValidationFailed.on("parent_id", "no such category")
        # One level of nesting keeps reports readable and rules out cycles.
        if parent.parent_id is not None:
            raise ValidationFailed.on("parent_id", "the parent is itself a subcategory")
        if parent.type != child.type:
            raise ValidationFailed.on("parent_id", f"the parent is an {parent.type} category")

    def create(
        self, user_id: str, cmd: CreateCategory, idem: IdempotencyMark | None = None
    ) -> Category:
        now = self.clock.now()
        category = Category(
            id=self.ids.new_id(),
            name=cmd.name,
            color=cmd.color,
            type=cmd.type,
            description=cmd.description,
            parent_id=cmd.parent_id,
            created_at=now,
            updated_at=now,
        )
        self._check_parent(user_id, cmd.parent_id, category)
        # As for accounts: read first, concurrent creates may pass by the few in flight.
        held = self.category_store.list_categories(user_id, self.max_categories, None).items
        check_ceiling("categories", len(held), self.max_categories)
        self.category_store.add_category(user_id, category, idem.seal(category) if idem else None)
        self.bus.publish(CategoryChanged(user_id, category.id))
        return category

    def get(self, user_id: str, category_id: str) -> Category:
        category = self.category_store.get_category(user_id, category_id)
        if category is None:
            raise NotFound("category not found")
        return category

    def list(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        return self.category_store.list_categories(user_id, limit, cursor)

    def update(self, user_id: str, category_id: str, cmd: UpdateCategory) -> Category:
        old = self.get(user_id, category_id)
        changes = cmd.given()
        new = replace(old, **changes, updated_at=self.clock.now())
        if "parent_id" in changes or "type" in changes:
            self._check_parent(user_id, new.parent_id, new)
        becomes_child = new.parent_id is not None and new.parent_id != old.parent_id
        if (becomes_child or new.type != old.type) and self.category_store.has_children(
            user_id, old.id
        ):
            if becomes_child:
                raise ValidationFailed.on(
                    "parent_id", "the category has subcategories; only one level of nesting"
                )
            raise ValidationFailed.on(
                "type", f"the category has {old.type} subcategories; change them first"
            )
        self.category_store.update_category(user_id, old, new)
        self.bus.publish(CategoryChanged(user_id, new.id))
        return new

    def delete(
        self, user_id: str, category_id: str, reassign_to: str | None, uncategorize: bool
    ) -> None:
        category = self.get(user_id, category_id)
        if reassign_to is not None and uncategorize:
            raise ValidationFailed.on("reassign_to", "give either reassign_to or uncategorize")
        if reassign_to is not None:
            if reassign_to == category_id:
                raise ValidationFailed.on("reassign_to", "must be another category")
            if self.category_store.get_category(user_id, reassign_to) is None:
                raise ValidationFailed.on("reassign_to", "no such category")
        elif not uncategorize and self.category_store.category_in_use(user_id, category_id):
            raise Conflict(
                "the category is used by transactions; pass ?reassign_to=<category id> "
                "or ?uncategorize=true"
            )
        self.category_store.delete_category(user_id, category, reassign_to)
        self.bus.publish(CategoryChanged(user_id, category_id))
