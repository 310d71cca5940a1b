"""Settings from the environment (Cloud Run sets them; `nox -s dev` sets the local ones)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

# Locally, tasks and the scheduler authenticate to internal endpoints with this header.
INTERNAL_HEADER = "X-Valorize-Internal"
# Written per function from functions/registry.py (by devstack and by infra/cdktf alike).
ALLOWED_QUEUES_ENV = "VALORIZE_TASK_QUEUES"
INTERNAL_CALLERS_ENV = "VALORIZE_INTERNAL_CALLERS"
INTERNAL_AUDIENCES_ENV = "VALORIZE_INTERNAL_AUDIENCES"
# Where Google publishes the keys that sign its ID tokens (the x509 form google-auth reads).
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    project: str = "valorize-local"
    redis_url: str = "redis://127.0.0.1:6379/0"
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    max_body_bytes: int = 1_048_576
    # Local stacks only: the shared secret internal endpoints accept in X-Valorize-Internal.
    # Production sets none; there, internal endpoints accept only OIDC tokens.
    internal_secret: str | None = None
    # The queues this function may enqueue on (registry "enqueues"); None: none declared.
    allowed_queues: tuple[str, ...] | None = None
    # Service-account emails whose OIDC tokens internal endpoints accept, and the audiences
    # those tokens must carry (this function's URL as Cloud Tasks / Scheduler address it).
    internal_callers: tuple[str, ...] = ()
    internal_audiences: tuple[str, ...] = ()
    oidc_certs_url: str = GOOGLE_OIDC_CERTS_URL
    # How many proxies in front of us append to X-Forwarded-For: the client address is that
    # many entries from the right (whatever the client wrote itself is further left).
    trusted_proxy_hops: int = 1
    # Realtime catch-up window: each user's last N events, kept until this long after the
    # user's latest event (see adapters/realtime.py).
    realtime_log_events: int = 500
    realtime_log_seconds: int = 24 * 3600
    # After a Redis error, functions stop publishing realtime events this long (then retry).
    realtime_breaker_seconds: float = 5.0
    cache_ttl_seconds: int = 300
    # After a Redis error the cache is bypassed this long, so an outage costs one timeout,
    # not one per request; then it is tried again (recovery needs no restart).
    cache_breaker_seconds: float = 5.0
    # How long a write keeps retrying when other writes change what it read (then 409 with
    # Retry-After); well under the functions' 60 s timeout.
    contention_budget_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT", cls.project),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            cors_origins=_csv(env.get("VALORIZE_CORS_ORIGINS", "")),
            max_body_bytes=int(env.get("VALORIZE_MAX_BODY_BYTES", cls.max_body_bytes)),
            internal_secret=env.get("VALORIZE_INTERNAL_SECRET") or None,
            allowed_queues=(_csv(env[ALLOWED_QUEUES_ENV]) if ALLOWED_QUEUES_ENV in env else None),
            internal_callers=_csv(env.get(INTERNAL_CALLERS_ENV, "")),
            internal_audiences=tuple(
                a.rstrip("/") for a in _csv(env.get(INTERNAL_AUDIENCES_ENV, ""))
            ),
            oidc_certs_url=env.get("VALORIZE_OIDC_CERTS_URL", GOOGLE_OIDC_CERTS_URL),
            cache_ttl_seconds=int(env.get("VALORIZE_CACHE_TTL_SECONDS", cls.cache_ttl_seconds)),
            cache_breaker_seconds=float(
                env.get("VALORIZE_CACHE_BREAKER_SECONDS", cls.cache_breaker_seconds)
            ),
            contention_budget_seconds=float(
                env.get("VALORIZE_CONTENTION_BUDGET_SECONDS", cls.contention_budget_seconds)
            ),
            trusted_proxy_hops=int(env.get("VALORIZE_TRUSTED_PROXY_HOPS", cls.trusted_proxy_hops)),
            realtime_log_events=int(
                env.get("VALORIZE_REALTIME_LOG_EVENTS", cls.realtime_log_events)
            ),
            realtime_log_seconds=int(
                env.get("VALORIZE_REALTIME_LOG_SECONDS", cls.realtime_log_seconds)
            ),
            realtime_breaker_seconds=float(
                env.get("VALORIZE_REALTIME_BREAKER_SECONDS", cls.realtime_breaker_seconds)
            ),
        )


@cache
def settings() -> Settings:
    return Settings.from_env()
