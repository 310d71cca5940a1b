"""An in-process message bus: the write side publishes domain events after committing, and
each handler (realtime push, cache invalidation, alerts) runs in turn. A failing handler is
logged and never fails the write that already happened."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from valorize.domain.events import Event

log = logging.getLogger(__name__)
Handler = Callable[[Event], None]


class MessageBus:
    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type[Event], handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                log.exception("handler %s failed for %s", handler, type(event).__name__)
