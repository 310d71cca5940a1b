"""The per-user query cache the read side goes through (adapters/cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class QueryCache(Protocol):
    def get_or_compute(self, user_id: str, key: str, compute: Callable[[], Any]) -> Any: ...
    def bump(self, user_id: str) -> None:
        """Something the user can see changed: every cached answer of theirs is stale."""
        ...
