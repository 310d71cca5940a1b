"""Registration, login and personal API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from valorize.domain import ids
from valorize.domain.errors import Conflict, NotFound, RateLimited, Unauthorized
from valorize.domain.model import (
    DEFAULT_CATEGORIES,
    ApiToken,
    Category,
    User,
    default_locale,
)
from valorize.service.ports import (
    Clock,
    IdempotencyMark,
    Ids,
    LoginThrottle,
    PasswordHasher,
    RevocationFeed,
    UserStore,
)
from valorize.service.requests import CreateToken, Login, Register

TOKEN_PREFIX = "vz"
# last_used_at is informational: writing it on every request would turn each read into a write.
TOUCH_EVERY = timedelta(minutes=5)
# Verified tokens kept in memory per instance: enough for every token a busy instance sees in
# a minute; the ones kept longest (the soonest to expire) go first.
TOKEN_CACHE_SIZE = 10_000


def secret_hash(secret: str) -> str:
    # Token secrets are 256 random bits, so a fast hash is enough (a slow one is for passwords).
    return hashlib.sha256(secret.encode()).hexdigest()


class Principal(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is made per request and is as immutable.
    user_id: str
    token_id: str


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str


StoredToken = tuple[ApiToken, str]


class _Kept(NamedTuple):
    stored: StoredToken
    # The token cache's timer reading after which the entry is not trusted any more.
    until: float


class TokenCache:
    """Tokens as stored (with their secret's hash), kept in memory for `ttl` seconds, so that
    authenticating a request costs no database round trip.

    A revocation reaches every instance through the feed and is applied before the next
    lookup, so a revoked token stops working everywhere as soon as the announcement arrives
    (milliseconds), whatever the TTL; the TTL only bounds how long a lost announcement could
    go unnoticed. While the feed is down nothing is served from memory. Only tokens that
    exist are kept: the secret is still compared on every request (a wrong secret with a
    real id is refused), and unknown ids cost a lookup each, as before.
    """

    def __init__(
        self,
        load: Callable[[str], StoredToken | None],
        feed: RevocationFeed,
        ttl: float,
        size: int = TOKEN_CACHE_SIZE,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.load = load
        self.feed = feed
        self.ttl = ttl
        self.size = size
        self.timer = timer
        # A plain dict read without the lock: a hit is one lookup and one clock reading on
        # every request (cachetools' TTLCache cost several times that, behind a lock). Writes
        # take the lock; an entry is reinserted when kept again, so insertion order is
        # expiry order and the first entry is the one to drop when full.
        self._entries: dict[str, _Kept] = {}
        self._lock = threading.Lock()
        # Bumped by every revocation applied: a token loaded before one is not kept, since
        # it may be the revoked one, loaded just before its revocation was stored.
        self._generation = 0

    def get(self, token_id: str) -> StoredToken | None:
        # ttl 0: no cache (and no subscription to the feed).
        if not self.listen():
            return self.load(token_id)
        # Read before the lookup: a revocation applied from here on is seen by the check
        # below, one applied before already removed the entry or happened before the load.
        generation = self._generation
        kept = self._entries.get(token_id)
        if kept is not None and self.timer() < kept.until:
            return kept.stored
        found = self.load(token_id)
        if found is not None:
            with self._lock:
                if generation == self._generation:
                    self._entries.pop(token_id, None)
                    if len(self._entries) >= self.size:
                        del self._entries[next(iter(self._entries))]
                    self._entries[token_id] = _Kept(found, self.timer() + self.ttl)
        return found

    def listen(self) -> bool:
        """Subscribe to the revocation feed now (at instance start) instead of on the first
        request: True when it is live (and tokens may be kept)."""
        return self.ttl > 0 and self.feed.sync(self._forget, self._reset)

    def used(self, token_id: str, when: datetime) -> None:
        """The token's last use was recorded: keep the kept copy in step (until the same)."""
        with self._lock:
            kept = self._entries.get(token_id)
            if kept is not None:
                token, stored_hash = kept.stored
                self._entries[token_id] = kept._replace(
                    stored=(replace(token, last_used_at=when), stored_hash)
                )

    def _forget(self, token_id: str) -> None:
        with self._lock:
            self._entries.pop(token_id, None)
            self._generation += 1

    def _reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1


class AuthService:
    def __init__(
        self,
        user_store: UserStore,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        clock: Clock,
        ids: Ids,
        revocations: RevocationFeed,
        token_cache_seconds: float = 0,
        changed: Callable[[str], None] | None = None,
    ) -> None:
        """`changed(user_id)`: the user's tokens changed (one issued, revoked or its
        last_used_at moved): their cached reads are stale (bootstrap bumps the auth scope)."""
        self.user_store = user_store
        self.hasher = hasher
        self.throttle = throttle
        self.clock = clock
        self.ids = ids
        self.revocations = revocations
        self.tokens = TokenCache(user_store.get_token, revocations, token_cache_seconds)
        self.changed = changed or (lambda user_id: None)

    def _issue(self, user_id: str, name: str, days: int | None) -> tuple[IssuedToken, str]:
        now = self.clock.now()
        token = ApiToken(
            id=self.ids.new_id(),
            user_id=user_id,
            name=name,
            created_at=now,
            expires_at=now + timedelta(days=days) if days else None,
        )
        secret = secrets.token_urlsafe(32)
        return IssuedToken(token, f"{TOKEN_PREFIX}_{token.id}_{secret}"), secret_hash(secret)

    def register(self, cmd: Register) -> tuple[User, IssuedToken]:
        now = self.clock.now()
        locale = cmd.locale or default_locale(cmd.preferred_currency)
        user = User(
            id=self.ids.new_id(),
            email=cmd.email.lower(),
            name=cmd.name,
            preferred_currency=cmd.preferred_currency,
            locale=locale,
            created_at=now,
        )
        categories = [
            Category(
                id=self.ids.new_id(),
                name=d.names[locale],
                color=d.color,
                type=d.type,
                description=d.descriptions[locale],
                is_default=True,
                created_at=now,
                updated_at=now,
            )
            for d in DEFAULT_CATEGORIES
        ]
        issued, hashed_secret = self._issue(user.id, "default", None)
        # The slow hash runs before any write so a failure leaves nothing behind.
        password_hash = self.hasher.hash(cmd.password)
        self.user_store.create_user(user, password_hash, categories, issued.token, hashed_secret)
        return user, issued

    def login(self, cmd: Login, client_ip: str) -> IssuedToken:
        key = f"{cmd.email.lower()}|{client_ip}"
        # Counted before the check, in one step with reading the count: a burst of
        # concurrent logins gets at most the throttle's limit of password checks.
        wait = self.throttle.attempt(key)
        if wait > 0:
            raise RateLimited(f"too many failed logins; try again in {wait} s", retry_after=wait)
        found = self.user_store.find_credentials(cmd.email.lower())
        if found is None:
            # Spend the same time as a real check so response time does not reveal accounts.
            self.hasher.verify(_DUMMY_HASH.get(self.hasher), cmd.password)
            raise Unauthorized("email or password is incorrect")
        user_id, password_hash = found
        if not self.hasher.verify(password_hash, cmd.password):
            raise Unauthorized("email or password is incorrect")
        self.throttle.succeeded(key)
        issued, hashed = self._issue(user_id, "login", 30)
        self.user_store.add_token(issued.token, hashed)
        self.changed(user_id)
        return issued

    def authenticate(self, bearer: str) -> Principal:
        parts = bearer.split("_", 2)
        # The id is checked before it is looked up: it names a document.
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not ids.ENTITY.matches(parts[1]):
            raise Unauthorized("invalid token")
        _, token_id, secret = parts
        found = self.tokens.get(token_id)
        if found is None:
            raise Unauthorized("invalid or revoked token")
        token, stored_hash = found
        if not hmac.compare_digest(stored_hash, secret_hash(secret)):
            raise Unauthorized("invalid or revoked token")
        now = self.clock.now()
        if token.is_expired(now):
            raise Unauthorized("token expired")
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            self.user_store.touch_token(token.id, now)
            self.tokens.used(token.id, now)
            self.changed(token.user_id)
        return Principal(token.user_id, token.id)

    def me(self, user_id: str) -> User:
        user = self.user_store.get_user(user_id)
        if user is None:
            raise NotFound("user not found")
        return user

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        return self.user_store.list_tokens(user_id)

    def create_token(
        self, user_id: str, cmd: CreateToken, idem: IdempotencyMark | None = None
    ) -> IssuedToken:
        issued, hashed = self._issue(user_id, cmd.name, cmd.expires_in_days)
        self.user_store.add_token(issued.token, hashed, idem.seal(issued) if idem else None)
        self.changed(user_id)
        return issued

    def revoke_token(self, user_id: str, token_id: str) -> None:
        if not self.user_store.delete_token(user_id, token_id):
            raise NotFound("token not found")
        self.changed(user_id)
        self.revocations.announce(token_id)


class _DummyHash:
    """A real hash of a random password, made once per hasher, for constant-time misses."""

    def __init__(self) -> None:
        self._value: str | None = None

    def get(self, hasher: PasswordHasher) -> str:
        if self._value is None:
            self._value = hasher.hash(secrets.token_urlsafe(16))
        return self._value


_DUMMY_HASH = _DummyHash()

__all__ = ["AuthService", "Conflict", "IssuedToken", "Principal"]
