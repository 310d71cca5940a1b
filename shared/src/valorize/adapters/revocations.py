"""Token revocations announced to every instance (the RevocationFeed port) on a Redis feed
(adapters/feeds.py): a revoked token is refused by every instance's very next request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from valorize.adapters.feeds import delivered, own_feed
from valorize.service.ports.cache import Feed

log = logging.getLogger(__name__)

CHANNEL = "valorize:tokens:revoked"
# The marker of a revocation that could not be announced, counted by a log-based metric
# (infra/cdktf/config.py DROPPED_MARKERS): other instances then honour the token until their
# cache's TTL runs out.
UNANNOUNCED = "revocation_unannounced"


class RedisRevocationFeed:
    """Announces on `client`; reads `feed` (CHANNEL of the instance's shared subscription,
    bootstrap), or a subscription of its own."""

    def __init__(self, client: redis.Redis, feed: Feed | None = None, **options: Any) -> None:
        self.client = client
        self.feed = feed or own_feed(client, CHANNEL, **options)

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        return self.feed.sync(forget, reset)

    def announce(self, token_id: str) -> None:
        try:
            self.client.publish(CHANNEL, token_id)
            delivered(self.client)
        except redis.RedisError as error:
            log.error(
                "token revocation not announced: %s",
                error,
                extra={"entry": {"valorize_event": UNANNOUNCED, "token_id": token_id}},
            )
