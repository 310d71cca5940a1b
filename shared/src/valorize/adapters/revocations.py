"""Token revocations announced to every instance (the RevocationFeed port) on a Redis feed
(adapters/feeds.py): a revoked token is refused by every instance's very next request."""

from __future__ import annotations

import logging
from typing import Any

import redis

from valorize.adapters.feeds import RedisFeed

log = logging.getLogger(__name__)

CHANNEL = "valorize:tokens:revoked"
# The marker of a revocation that could not be announced, counted by a log-based metric
# (infra/cdktf/config.py DROPPED_MARKERS): other instances then honour the token until their
# cache's TTL runs out.
UNANNOUNCED = "revocation_unannounced"


class RedisRevocationFeed(RedisFeed):
    def __init__(self, client: redis.Redis, **options: Any) -> None:
        super().__init__(client, CHANNEL, **options)

    def announce(self, token_id: str) -> None:
        try:
            self.client.publish(CHANNEL, token_id)
        except redis.RedisError as error:
            log.error(
                "token revocation not announced: %s",
                error,
                extra={"entry": {"valorize_event": UNANNOUNCED, "token_id": token_id}},
            )
