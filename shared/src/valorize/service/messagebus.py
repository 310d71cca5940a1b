"""An in-process message bus: the write side publishes domain events after committing, and
each handler (realtime push, cache invalidation, alerts) runs in turn.

A failing handler never fails the write that already happened, and is never silent: it is
logged at ERROR with the event and a fixed marker (``valorize_event: subscriber_failed``),
which the log-based metric ``valorize/subscriber_failures`` counts and alerts on
(infra/cdktf). What a handler must not lose is not done inside it: alerts enqueue a named
notify task (retried by Cloud Tasks), so only the enqueue itself can fail here."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from valorize.domain.events import Event

log = logging.getLogger(__name__)
Handler = Callable[[Event], None]
# The marker the log-based metric filters on; keep in step with infra/cdktf/config.py.
SUBSCRIBER_FAILED = "subscriber_failed"
# Enough of the event to replay it by hand, not a whole statement's worth.
MAX_EVENT_CHARS = 2000


def _handler_name(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)
    name = getattr(handler, "__qualname__", None) or repr(handler)
    return f"{type(owner).__name__}.{handler.__name__}" if owner is not None else name


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
                log.exception(
                    "subscriber %s failed for %s",
                    _handler_name(handler),
                    type(event).__name__,
                    extra={
                        "entry": {
                            "valorize_event": SUBSCRIBER_FAILED,
                            "subscriber": _handler_name(handler),
                            "event_type": type(event).__name__,
                            "user_id": event.user_id,
                            "event": repr(event)[:MAX_EVENT_CHARS],
                        }
                    },
                )
