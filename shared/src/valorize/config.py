"""Settings from the environment (Cloud Run sets them; `nox -s dev` sets the local ones): the
one place that reads it. The composition root (bootstrap.py) hands each adapter what it
needs from here."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from valorize.domain.ceilings import (
    MAX_ACCOUNTS,
    MAX_CATEGORIES,
    MAX_RECURRENCES,
    MAX_RULES,
    OCCURRENCES_PER_RUN,
    RECURRENCE_BACKDATE_DAYS,
    RULES_BUDGET_SECONDS,
)

if TYPE_CHECKING:
    from valorize.adapters.email import SmtpConfig

# Locally, tasks and the scheduler authenticate to internal endpoints with this header.
INTERNAL_HEADER = "X-Valorize-Internal"
# Written per function from functions/registry.py (by devstack and by infra/cdktf alike).
ALLOWED_QUEUES_ENV = "VALORIZE_TASK_QUEUES"
INTERNAL_CALLERS_ENV = "VALORIZE_INTERNAL_CALLERS"
INTERNAL_AUDIENCES_ENV = "VALORIZE_INTERNAL_AUDIENCES"
WARM_CLIENTS_ENV = "VALORIZE_WARM_CLIENTS"
# Where Google publishes the keys that sign its ID tokens (the x509 form google-auth reads).
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _at_most(value: int, limit: int) -> int:
    if value > limit:
        raise ValueError(f"{value} is over the most the code supports, {limit}")
    return value


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


def _float_or_none(value: str | None) -> float | None:
    return float(value) if value else None


def _by_suffix(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    """{name: value} of the variables `<prefix><NAME>` (name in lower case)."""
    return {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix) and v}


def _function_urls(env: Mapping[str, str]) -> dict[str, str]:
    urls = {k: str(v) for k, v in json.loads(env.get("VALORIZE_FUNCTION_URLS") or "{}").items()}
    urls.update(_by_suffix(env, "FUNCTION_URL_"))
    return {name: url.rstrip("/") for name, url in urls.items()}


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
    # The clients an instance builds while it starts (registry "clients": firestore, redis,
    # revocations, tasks, statements); none: each is built on first use.
    warm_clients: tuple[str, ...] = ()
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
    # Cached answers also kept in each instance's memory, dropped when Redis announces a bump
    # (adapters/cache.py NearQueryCache): this long at most (0: off), within this budget.
    near_cache_seconds: float = 60.0
    near_cache_bytes: int = 32 * 1024 * 1024
    # How long a write keeps retrying when other writes change what it read (then 409 with
    # Retry-After); well under the functions' 60 s timeout.
    contention_budget_seconds: float = 10.0
    # The longest one Firestore call waits, retries included, before the request answers 503
    # (adapters/firestore/deadlines.py): well under the functions' 60 s timeout, well over
    # what a healthy Firestore takes (a query streaming thousands of documents included).
    firestore_deadline_seconds: float = 20.0
    # How long an instance keeps a verified token in memory (0: look it up on every request).
    # Revocations reach every instance at once over Redis (adapters/revocations.py); this only
    # bounds how long a revocation whose announcement was lost goes unnoticed.
    token_cache_seconds: float = 60.0
    # Cloud Tasks: the region, the full path of a queue where it is not the local emulator's
    # (TASKS_QUEUE_<NAME>), the service account whose OIDC tokens tasks carry, the emulator.
    tasks_location: str = "us-central1"
    task_queue_paths: Mapping[str, str] = field(default_factory=dict)
    tasks_invoker: str | None = None
    tasks_emulator_host: str | None = None
    # Where each function is served (FUNCTION_URL_<NAME> in production, set by infra;
    # VALORIZE_FUNCTION_URLS, JSON, locally): tasks are addressed to them.
    function_urls: Mapping[str, str] = field(default_factory=dict)
    # Uploaded statements (Cloud Storage; the emulator locally).
    statements_bucket: str = "valorize-statements"
    storage_emulator_host: str | None = None
    # Imports: the upload limit and how many rows a commit or revert runs inline (None: the
    # service's defaults, service/imports/), and how many deliveries a task gets.
    max_statement_bytes: int | None = None
    import_inline_rows: int | None = None
    import_max_attempts: int = 5
    # Deleting an account with transactions (service/accounts.py): how many one write deletes
    # and how many seconds one task delivery deletes for (None: the service's defaults).
    account_delete_page: int | None = None
    account_delete_budget_seconds: float | None = None
    # The mail server (adapters/email.py); None: notifications are not emailed.
    smtp: SmtpConfig | None = None
    # The Firestore emulator, locally (the client finds it by itself; realtime_server/ talks
    # to it over REST).
    firestore_emulator_host: str | None = None
    # realtime_server/: gunicorn's worker class ("eventlet" or "gevent").
    realtime_worker: str = "eventlet"
    # --- what one user may do (README "Limits"; 422 or 429 beyond) ---------------------------
    # How many of each a user may keep. max_rules is at most domain.rules.MAX_RULES (200).
    max_accounts: int = MAX_ACCOUNTS
    max_categories: int = MAX_CATEGORIES
    max_recurrences: int = MAX_RECURRENCES
    max_rules: int = MAX_RULES
    # CPU the rules may spend on one transaction; the rules not evaluated by then are skipped.
    rules_budget_ms: float = RULES_BUDGET_SECONDS * 1000
    # How far back a recurrence may start, and how many occurrences of one recurrence one
    # scheduler run creates (an older backlog is caught up over the following runs).
    recurrence_backdate_days: int = RECURRENCE_BACKDATE_DAYS
    recurrence_occurrences_per_run: int = OCCURRENCES_PER_RUN
    # Per user, in the `limits` notation ("N/second|minute|hour|day", sliding window):
    # writes (every authenticated POST, PATCH, PUT, DELETE) and statement uploads (also
    # writes). Kept in Redis; not enforced while Redis is unreachable.
    write_rate: str = "300/minute"
    upload_rate: str = "30/hour"
    # The realtime server: `sync` events per socket.
    sync_rate: str = "10/minute"

    def function_url(self, name: str) -> str:
        if name not in self.function_urls:
            raise LookupError(f"no URL configured for function {name!r}")
        return self.function_urls[name]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        from valorize.adapters.email import SmtpConfig

        env = os.environ if env is None else env
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
            warm_clients=_csv(env.get(WARM_CLIENTS_ENV, "")),
            cache_ttl_seconds=int(env.get("VALORIZE_CACHE_TTL_SECONDS", cls.cache_ttl_seconds)),
            cache_breaker_seconds=float(
                env.get("VALORIZE_CACHE_BREAKER_SECONDS", cls.cache_breaker_seconds)
            ),
            near_cache_seconds=float(
                env.get("VALORIZE_NEAR_CACHE_SECONDS", cls.near_cache_seconds)
            ),
            near_cache_bytes=int(env.get("VALORIZE_NEAR_CACHE_BYTES", cls.near_cache_bytes)),
            contention_budget_seconds=float(
                env.get("VALORIZE_CONTENTION_BUDGET_SECONDS", cls.contention_budget_seconds)
            ),
            firestore_deadline_seconds=float(
                env.get("VALORIZE_FIRESTORE_DEADLINE_SECONDS", cls.firestore_deadline_seconds)
            ),
            token_cache_seconds=float(
                env.get("VALORIZE_TOKEN_CACHE_SECONDS", cls.token_cache_seconds)
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
            tasks_location=env.get("VALORIZE_TASKS_LOCATION", cls.tasks_location),
            task_queue_paths=_by_suffix(env, "TASKS_QUEUE_"),
            tasks_invoker=env.get("TASKS_INVOKER_SA") or None,
            tasks_emulator_host=env.get("TASKS_EMULATOR_HOST") or None,
            function_urls=_function_urls(env),
            statements_bucket=(
                env.get("VALORIZE_BUCKET") or env.get("STATEMENTS_BUCKET") or cls.statements_bucket
            ),
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
            max_statement_bytes=_int_or_none(env.get("VALORIZE_MAX_STATEMENT_BYTES")),
            import_inline_rows=_int_or_none(env.get("VALORIZE_IMPORT_INLINE_ROWS")),
            import_max_attempts=int(
                env.get("VALORIZE_IMPORT_MAX_ATTEMPTS", cls.import_max_attempts)
            ),
            account_delete_page=_int_or_none(env.get("VALORIZE_ACCOUNT_DELETE_PAGE")),
            account_delete_budget_seconds=_float_or_none(
                env.get("VALORIZE_ACCOUNT_DELETE_BUDGET_SECONDS")
            ),
            smtp=SmtpConfig.from_env(env),
            firestore_emulator_host=env.get("FIRESTORE_EMULATOR_HOST") or None,
            realtime_worker=env.get("VALORIZE_REALTIME_WORKER", cls.realtime_worker),
            max_accounts=int(env.get("VALORIZE_MAX_ACCOUNTS", cls.max_accounts)),
            max_categories=int(env.get("VALORIZE_MAX_CATEGORIES", cls.max_categories)),
            max_recurrences=int(env.get("VALORIZE_MAX_RECURRENCES", cls.max_recurrences)),
            max_rules=_at_most(int(env.get("VALORIZE_MAX_RULES", cls.max_rules)), MAX_RULES),
            rules_budget_ms=float(env.get("VALORIZE_RULES_BUDGET_MS", cls.rules_budget_ms)),
            recurrence_backdate_days=int(
                env.get("VALORIZE_RECURRENCE_BACKDATE_DAYS", cls.recurrence_backdate_days)
            ),
            recurrence_occurrences_per_run=int(
                env.get(
                    "VALORIZE_RECURRENCE_OCCURRENCES_PER_RUN", cls.recurrence_occurrences_per_run
                )
            ),
            write_rate=env.get("VALORIZE_WRITE_RATE", cls.write_rate),
            upload_rate=env.get("VALORIZE_UPLOAD_RATE", cls.upload_rate),
            sync_rate=env.get("VALORIZE_SYNC_RATE", cls.sync_rate),
        )
