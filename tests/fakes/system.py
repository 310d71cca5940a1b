"""A clock that stands still, sequential ids, and a bus that records events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from valorize.domain.events import Event


class FixedClock:
    """Time stands still until a test moves it."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2024, 1, 15, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class SeqIds:
    """Sequential, time-ordered, fixed-width lowercase hex ids (like uuid7().hex)."""

    def __init__(self, start: int = 1) -> None:
        self.n = start - 1

    def new_id(self) -> str:
        self.n += 1
        return f"{self.n:032x}"


@dataclass
class RecordingBus:
    events: list[Event] = field(default_factory=list)

    def publish(self, event: Event) -> None:
        self.events.append(event)
