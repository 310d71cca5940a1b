"""Clock and id generator."""

from __future__ import annotations

from datetime import UTC, datetime

import uuid_utils


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Ids:
    """Time-ordered ids: documents sort by creation, and ties in a list order stably."""

    def new_id(self) -> str:
        return uuid_utils.uuid7().hex
