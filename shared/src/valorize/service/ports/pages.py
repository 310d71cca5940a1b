"""A page of a list and the cursor to the next one (None: the last page)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PageResult(Generic[T]):
    items: list[T]
    next_cursor: str | None


def walk(fetch: Callable[[str | None], PageResult[T]]) -> Iterator[T]:
    """Every item of every page, fetching the next page only when the last one is used up."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if (cursor := page.next_cursor) is None:
            return
