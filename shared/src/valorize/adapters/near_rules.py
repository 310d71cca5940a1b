"""The user's rules kept in each instance's memory (a RuleStore around the Firestore one).

Every transaction a user creates runs their rules (a manual create, a recurrence's
occurrence, an import's commit), so each create read the rules collection: one query per
create, even for the many users who have no rules at all. Rules change rarely, so each
instance keeps what it read, and every change is announced to every instance on a Redis feed
(adapters/feeds.py, as token revocations and cache bumps are): an instance applies what was
announced before it trusts what it keeps, so a rule saved before a create began is applied by
that create, whichever instance serves it.

While the feed is down nothing is served from memory, and when it is back everything kept is
dropped. An announcement that fails (Redis down as the rule is written) is logged at ERROR
and counted (`rules_change_unannounced`); other instances then apply the rules they kept
until `ttl` runs out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import redis
from cachetools import TTLCache

from valorize.adapters.feeds import delivered
from valorize.domain.automation import RuleJob, RuleJobPage
from valorize.domain.rules import MAX_RULES, Rule
from valorize.service.ports.cache import Feed
from valorize.service.ports.rules import RuleStore

log = logging.getLogger(__name__)

CHANNEL = "valorize:rules:changed"
# The marker of a change that could not be announced (infra/cdktf/config.py DROPPED_MARKERS).
UNANNOUNCED = "rules_change_unannounced"


class NearRules:
    def __init__(
        self,
        store: RuleStore,
        client: redis.Redis,
        feed: Feed,
        ttl: float = 60.0,
        users: int = 100_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.client = client
        self.feed = feed
        self._kept: TTLCache[str, tuple[Rule, ...]] = TTLCache(users, ttl, timer=timer)
        # Changes whenever anything kept is dropped: a read that began before a drop does
        # not keep what it read, which may predate the change announced.
        self._epoch = 0
        self._lock = threading.Lock()

    def list_rules(self, user_id: str) -> list[Rule]:
        if not self.feed.sync(self._forget, self._reset):
            return self.store.list_rules(user_id)
        with self._lock:
            epoch = self._epoch
            kept = self._kept.get(user_id)
        if kept is not None:
            return list(kept)
        rules = self.store.list_rules(user_id)
        with self._lock:
            if self._epoch == epoch:
                self._kept[user_id] = tuple(rules)
        return rules

    # --- writes: announced once done (or failed: a commit may land even so) --------------------

    def add_rule(
        self, user_id: str, place: Callable[[list[Rule]], Rule], limit: int = MAX_RULES
    ) -> Rule:
        with self._changing(user_id):
            return self.store.add_rule(user_id, place, limit)

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        with self._changing(user_id):
            return self.store.update_rule(user_id, rule_id, mutate)

    def delete_rule(self, user_id: str, rule_id: str) -> bool:
        with self._changing(user_id):
            return self.store.delete_rule(user_id, rule_id)

    @contextmanager
    def _changing(self, user_id: str) -> Iterator[None]:
        try:
            yield
        finally:
            # This instance's next read must see the write; the others hear of it.
            self._forget(user_id)
            self._announce(user_id)

    def _announce(self, user_id: str) -> None:
        try:
            self.client.publish(CHANNEL, user_id)
            delivered(self.client)
        except redis.RedisError as error:
            log.error(
                "rules change not announced: %s",
                error,
                extra={"entry": {"valorize_event": UNANNOUNCED, "user_id": user_id}},
            )

    def _forget(self, user_id: str) -> None:
        with self._lock:
            self._epoch += 1
            self._kept.pop(user_id, None)

    def _reset(self) -> None:
        with self._lock:
            self._epoch += 1
            self._kept.clear()

    # --- on-demand runs: not kept --------------------------------------------------------------

    def add_rule_job(self, user_id: str, job: RuleJob) -> None:
        self.store.add_rule_job(user_id, job)

    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None:
        return self.store.get_rule_job(user_id, job_id)

    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        return self.store.start_rule_job_page(user_id, job_id, page)

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        return self.store.finish_rule_job_page(user_id, job_id, index, now)
