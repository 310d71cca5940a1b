"""The near cache's bookkeeping on fakes (adapters/cache.py NearQueryCache): what it keeps,
when it drops it, and that an answer rendered across a drop is never kept."""

from __future__ import annotations

from collections.abc import Callable

from valorize.adapters.cache import NearQueryCache, _Generations, announced, announcement
from valorize.service.ports.cache import LEDGER, SCOPES, Outcome, Scope


class Remote:
    """RedisQueryCache's contract in a dict: per user and scope a version, bumped by writes."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.answers: dict[tuple[str, int, str], bytes] = {}
        self.lookups = 0
        self.down = False

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        name = announcement(user_id, scope)
        self.versions[name] = self.versions.get(name, 0) + 1

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        self.lookups += 1
        if self.down:
            return render(), "bypass"
        name = announcement(user_id, scope)
        where = (name, self.versions.get(name, 0), key)
        if where in self.answers:
            return self.answers[where], "hit"
        body = render()
        self.answers[where] = body
        return body, "miss"


class Feed:
    def __init__(self) -> None:
        self.live = True
        self.pending: list[str] = []
        self.resets = False

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        if self.resets:
            self.resets = False
            reset()
        for user in self.pending:
            forget(user)
        self.pending.clear()
        return self.live


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def near(remote: Remote, feed: Feed, **kw: object) -> NearQueryCache:
    return NearQueryCache(remote, feed, **kw)  # type: ignore[arg-type]


def test_kept_answers_are_served_without_the_remote() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    assert cache.get_or_render("u", "k", lambda: b"1") == (b"1", "miss")
    assert [cache.get_or_render("u", "k", lambda: b"?") for _ in range(5)] == [(b"1", "hit")] * 5
    assert remote.lookups == 1


def test_an_announced_bump_drops_only_that_users_answers() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "k", lambda: b"1")
    cache.get_or_render("v", "k", lambda: b"v")
    remote.bump("u")  # another instance's write...
    feed.pending.append("u")  # ...announced
    assert cache.get_or_render("u", "k", lambda: b"2") == (b"2", "miss")
    assert cache.get_or_render("v", "k", lambda: b"?") == (b"v", "hit")
    assert remote.lookups == 3


def test_its_own_bump_is_applied_at_once() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "k", lambda: b"1")
    cache.bump("u")
    assert remote.versions["u"] == 1
    assert cache.get_or_render("u", "k", lambda: b"2") == (b"2", "miss")


def test_an_answer_rendered_across_a_drop_is_not_kept() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)

    def render_while_a_write_lands() -> bytes:
        # Another thread applies a bump announced meanwhile: what this render read may
        # predate that write.
        remote.bump("u")
        cache._forget("u")
        return b"old"

    assert cache.get_or_render("u", "k", render_while_a_write_lands) == (b"old", "miss")
    assert cache.get_or_render("u", "k", lambda: b"new") == (b"new", "miss")


def test_a_feed_down_serves_from_the_remote_and_a_resubscription_drops_everything() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "k", lambda: b"1")
    feed.live = False
    assert cache.get_or_render("u", "k", lambda: b"?") == (b"1", "hit")
    assert remote.lookups == 2  # from the remote, not from memory
    feed.live, feed.resets = True, True
    remote.bump("u")  # missed while the feed was down
    assert cache.get_or_render("u", "k", lambda: b"2") == (b"2", "miss")


def test_nothing_is_kept_when_the_remote_is_bypassed() -> None:
    remote, feed = Remote(), Feed()
    remote.down = True
    cache = near(remote, feed)
    assert cache.get_or_render("u", "k", lambda: b"1") == (b"1", "bypass")
    assert cache.get_or_render("u", "k", lambda: b"2") == (b"2", "bypass")


def test_answers_expire_and_stay_within_the_byte_budget() -> None:
    remote, feed, clock = Remote(), Feed(), Clock()
    cache = near(remote, feed, ttl=10.0, max_bytes=3 * (1000 + 200), timer=clock)
    for n in range(5):
        cache.get_or_render("u", f"k{n}", lambda: b"x" * 1000)
    assert remote.lookups == 5
    kept = sum(cache.get_or_render("u", f"k{n}", lambda: b"x" * 1000)[1] == "hit" for n in (3, 4))
    assert kept == 2 and remote.lookups == 5  # the newest kept, the oldest evicted
    clock.now = 11.0
    cache.get_or_render("u", "k4", lambda: b"x" * 1000)
    assert remote.lookups == 6


def test_generations_never_make_a_dropped_answer_valid_again() -> None:
    gens = _Generations(size=2)
    before = gens.of("a")  # an answer of a's kept before any bump
    gens.bump("a")
    assert gens.of("a") != before
    gens.bump("b")
    gens.bump("c")  # a's number is evicted...
    assert gens.of("a") != before  # ...and its old answers stay invalid
    gens.reset()
    assert gens.of("a") != before and gens.of("b") != before


def test_an_announced_bump_of_one_scope_keeps_the_other_scopes_answers() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "ledger", lambda: b"L")
    cache.get_or_render("u", "inbox", lambda: b"N1", "notifications")
    remote.bump("u", "notifications")  # the notify worker stored one, on another instance
    feed.pending.append(announcement("u", "notifications"))
    assert cache.get_or_render("u", "inbox", lambda: b"N2", "notifications") == (b"N2", "miss")
    assert cache.get_or_render("u", "ledger", lambda: b"?") == (b"L", "hit")
    cache.bump("u")  # a ledger write here: the inbox stays
    assert cache.get_or_render("u", "ledger", lambda: b"L2") == (b"L2", "miss")
    assert cache.get_or_render("u", "inbox", lambda: b"?", "notifications") == (b"N2", "hit")


def test_its_own_bump_of_a_scope_is_applied_at_once() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "k", lambda: b"1", "imports")
    cache.bump("u", "imports")
    assert cache.get_or_render("u", "k", lambda: b"2", "imports") == (b"2", "miss")


def test_an_announcement_names_the_user_and_the_scope() -> None:
    assert announcement("u", LEDGER) == "u"  # as before scopes: understood by either release
    for scope in SCOPES:
        assert announced(announcement("u", scope)) == ("u", scope)
    assert announced("u someday") == ("u", LEDGER)  # a later release's scope: drop the ledger


def test_a_bump_of_an_unknown_scope_drops_the_ledgers_answers() -> None:
    remote, feed = Remote(), Feed()
    cache = near(remote, feed)
    cache.get_or_render("u", "k", lambda: b"1")
    remote.bump("u")
    feed.pending.append("u someday")
    assert cache.get_or_render("u", "k", lambda: b"2") == (b"2", "miss")
