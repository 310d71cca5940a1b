"""Time, ids and the in-process event bus."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from valorize.domain.events import Event


class Clock(Protocol):
    def now(self) -> datetime: ...


class Ids(Protocol):
    def new_id(self) -> str: ...


class EventBus(Protocol):
    def publish(self, event: Event) -> None:
        """Called after the change is committed; must never fail the write."""
        ...


class NullBus:
    def publish(self, event: Event) -> None:
        pass
