"""Alert profiles cached in Redis, so the alert handlers cost one Redis round trip per write
and no Firestore read when the user has set no threshold (the common case).

    alerts:{uid}:profile  JSON of the AlertProfile + the generation it was built at (TTL)
    alerts:{uid}:gen      a random token, replaced whenever the profile's sources change

A read is one MGET of both keys. The profile is used only when its generation is the current
one; otherwise it is rebuilt from Firestore and stored. An invalidation replaces the
generation *after* the change committed, so a rebuild that raced it stored the old
generation and is rebuilt again on the next read: a committed change is never hidden for
longer than that. (Should an invalidation itself fail, Redis being down, the stale profile
lives at most its TTL.)

When Redis fails, the profile is built from Firestore for `cooldown` seconds without trying
Redis (correct, costlier), then Redis is tried again.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import cast

import redis

from valorize.domain.alerts import AlertProfile

log = logging.getLogger(__name__)

PROFILE_TTL_SECONDS = 15 * 60
# Longer than a profile lives, so a profile can never outlive the generation it matched.
GENERATION_TTL_SECONDS = 7 * 24 * 3600


def _keys(user_id: str) -> tuple[str, str]:
    return f"alerts:{{{user_id}}}:profile", f"alerts:{{{user_id}}}:gen"


class RedisAlertProfiles:
    def __init__(
        self,
        client: redis.Redis,
        build: Callable[[str], AlertProfile],
        ttl: int = PROFILE_TTL_SECONDS,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.build = build
        self.ttl = ttl
        self.cooldown = cooldown
        self.clock = clock
        self._quiet_until = 0.0

    def _failed(self, error: Exception) -> None:
        self._quiet_until = self.clock() + self.cooldown
        log.warning(
            "alert profile cache unavailable (%s: %s); reading Firestore for %.0f s",
            type(error).__name__,
            error,
            self.cooldown,
        )

    def get(self, user_id: str) -> AlertProfile:
        if self.clock() < self._quiet_until:
            return self.build(user_id)
        profile_key, gen_key = _keys(user_id)
        try:
            raw, gen = cast(list[bytes | None], self.client.mget(profile_key, gen_key))
        except redis.RedisError as error:
            self._failed(error)
            return self.build(user_id)
        generation = gen.decode() if gen is not None else None
        if raw is not None:
            cached = json.loads(raw)
            if cached.get("gen") == generation:
                return AlertProfile.from_json(cached)
        profile = self.build(user_id)
        try:
            self.client.set(
                profile_key, json.dumps({**profile.to_json(), "gen": generation}), ex=self.ttl
            )
        except redis.RedisError as error:
            self._failed(error)
        return profile

    def forget(self, user_id: str) -> None:
        profile_key, gen_key = _keys(user_id)
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(gen_key, uuid.uuid4().hex, ex=GENERATION_TTL_SECONDS)
            pipe.delete(profile_key)
            pipe.execute()
        except redis.RedisError as error:
            self._failed(error)
