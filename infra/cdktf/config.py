"""Data that shapes the ValorizeAI stack: schedules, indexes, secrets, SLOs, APIs.

Functions and queues are not here: they come from the repository's one registry,
``functions/registry.py`` (re-exported below as FUNCTIONS and QUEUES), which the local stack,
the gateway and the packaging read too. Everything else that grows with the product lives
here as plain data so that adding a function, queue or index is one line and the stack code in
``stack.py`` never changes for it.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from functions.registry import (  # noqa: E402 - the registry lives at the repository root
    FUNCTIONS,
    INTERNAL_AUDIENCES_ENV,
    QUEUES,
    SCHEDULER_INVOKER,
    TASKS_INVOKER,
    Function,
    Queue,
    internal_paths,
    runtime_env,
)

__all__ = [
    "FUNCTIONS",
    "INTERNAL_AUDIENCES_ENV",
    "QUEUES",
    "SCHEDULER_INVOKER",
    "TASKS_INVOKER",
    "Function",
    "Queue",
    "internal_paths",
    "runtime_env",
]

# Python runtime for every function build; matches the interpreter the project is tested on.
FUNCTION_RUNTIME = "python311"

# Path inside the source bucket where each function's archive is uploaded: exactly what
# `nox -s package -- <name>` writes to dist/functions/<name>.zip. See README.md.
SOURCE_OBJECT_TEMPLATE = "functions/{name}.zip"


# Unknown /api paths and the bare domain land here; every function answers unknown paths
# with a problem+json 404, so any public one works.
DEFAULT_FUNCTION = "auth"


def routes_of(name: str) -> tuple[str, ...]:
    """The /api/<prefix> list routed to a function: its own name first, then its resources."""
    return FUNCTIONS[name].prefixes


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    kind: str


# Cloud Scheduler cannot template the body per run, so the body carries only the kind; the
# automate function takes the date from the X-CloudScheduler-ScheduleTime header when the
# body has none (see README.md).
SCHEDULES: dict[str, ScheduleSpec] = {
    "daily": ScheduleSpec("0 3 * * *", "daily"),
    "month-start": ScheduleSpec("0 4 1 * *", "month_start"),
}
SCHEDULE_TIME_ZONE = "Etc/UTC"
AUTOMATIONS_RUN_PATH = "/api/automations/run"


@dataclass(frozen=True)
class SecretSpec:
    description: str
    # Exposed as this environment variable...
    env_var: str | None = None
    # ... or mounted as a file at this path (folder, file name).
    mount: tuple[str, str] | None = None
    # Its value is written by the stack itself (from another resource), not by an operator.
    managed: bool = False


SECRETS: dict[str, SecretSpec] = {
    # Read by the notify function (shared/src/valorize/adapters/email.py). Its versions are
    # added by an operator (values never pass through Terraform) and pinned with
    # -var 'secret_versions={"smtp-credentials":"N"}'.
    "smtp-credentials": SecretSpec(
        "JSON: host, port, username, password; optional starttls, from",
        env_var="SMTP_CREDENTIALS",
    ),
    # Memorystore's AUTH string and TLS endpoint, as the one REDIS_URL every client reads
    # (rediss://:AUTH@host:6378/0?ssl_cert_reqs=required&ssl_ca_certs=...): written by the
    # stack from the instance, each function pinned to the version it wrote.
    "redis-url": SecretSpec(
        "rediss:// URL of Memorystore with its AUTH string", env_var="REDIS_URL", managed=True
    ),
    # The instance's server CA (not secret, but Secret Manager is how a file reaches a
    # function): the path the URL's ssl_ca_certs names.
    "redis-ca": SecretSpec(
        "Memorystore server CA (PEM)", mount=("/etc/secrets/redis-ca", "ca.pem"), managed=True
    ),
}
# Every function and the realtime server talk to Redis (cache, throttles, realtime log).
REDIS_SECRETS = ("redis-url", "redis-ca")

# The log-based metric counting work that was dropped or a safeguard that is off, by the marker
# its ERROR line carries (jsonPayload.valorize_event): bus subscribers that failed
# (service/messagebus.py), token revocations that could not be announced
# (adapters/revocations.py), rules skipped for a transaction's CPU budget (service/rules.py),
# rate limits and the login throttle failing open while Redis is unreachable
# (adapters/rate_limits.py, adapters/security.py), live events a request could not publish
# (adapters/realtime.py: the failure, then how many were skipped while Redis was away), live
# events of a task that could be neither pushed nor kept for its retry (service/task_pushes.py).
# The "no silent loss" alert fires on any.
DROPPED_MARKERS = (
    "subscriber_failed",
    "revocation_unannounced",
    "rules_change_unannounced",
    "cache_bump_failed",
    "rules_skipped",
    "rate_limits_unavailable",
    "login_throttle_unavailable",
    "realtime_unavailable",
    "realtime_events_dropped",
    "task_pushes_lost",
)
SUBSCRIBER_FAILURES_METRIC = "valorize/subscriber_failures"


@dataclass(frozen=True)
class IndexField:
    path: str
    order: str | None = None  # "ASCENDING" | "DESCENDING"
    array_contains: bool = False


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    fields: tuple[IndexField, ...]


# The filters of a transaction list (adapters/firestore/ledger.py list_query): equality on
# any of these, at most one array-contains (a category, or q's tokens, which carry the
# category when both are asked), and a range on the magnitude |amount|.
LIST_EQUALITIES = ("account_id", "type", "import_id")
LIST_ARRAYS = ("category_ids", "search_tokens")
LIST_RANGE = "magnitude"


def _list_indexes() -> list[IndexSpec]:
    """One index per shape a list query can take. Lists order and page by sort_key =
    "<date>#<id>" (newest first, stable tie-break, the from/to range and the cursor), so the
    equality and array fields lead and sort_key follows; a range on another field comes
    after it, DESCENDING like the last explicit order (Firestore orders by the inequality
    fields after the explicit ones, in that direction). sort_key alone is served by the
    automatic single-field index. 3 equalities x (none, 2 arrays) x (no range, range): 47."""
    specs: list[IndexSpec] = []
    for n in range(len(LIST_EQUALITIES) + 1):
        for equal in itertools.combinations(LIST_EQUALITIES, n):
            for array in (None, *LIST_ARRAYS):
                leading = [IndexField(f, "ASCENDING") for f in equal]
                if array is not None:
                    leading.append(IndexField(array, array_contains=True))
                for trailing in ((), (IndexField(LIST_RANGE, "DESCENDING"),)):
                    if leading or trailing:
                        fields = (*leading, IndexField("sort_key", "DESCENDING"), *trailing)
                        specs.append(IndexSpec("transactions", fields))
    return specs


# Composite indexes: every shape of the transaction lists, and the other queries below.
FIRESTORE_INDEXES: list[IndexSpec] = [
    # The import worker's duplicate window: one account, a date range, newest first.
    IndexSpec(
        "transactions", (IndexField("account_id", "ASCENDING"), IndexField("date", "DESCENDING"))
    ),
    *_list_indexes(),
    # users/{uid}/notifications?unread=true: unread ones, newest first.
    IndexSpec(
        "notifications", (IndexField("read", "ASCENDING"), IndexField("sort_key", "DESCENDING"))
    ),
]


@dataclass(frozen=True)
class FieldIndexSpec:
    """Single-field index settings of one field (a Firestore field override). An override
    replaces the automatic single-field indexes of that field, so it lists every scope the
    queries need: COLLECTION for queries inside one user's subcollection, COLLECTION_GROUP for
    queries across every user's."""

    collection: str
    field: str
    scopes: tuple[str, ...] = ("COLLECTION", "COLLECTION_GROUP")
    order: str = "ASCENDING"


FIRESTORE_FIELD_INDEXES: list[FieldIndexSpec] = [
    # The scheduler's daily fan-out: collection group "recurrences" where next_due <= day,
    # ordered by next_due; and one user's due recurrences (collection scope).
    FieldIndexSpec("recurrences", "next_due"),
]


@dataclass(frozen=True)
class RealtimeSpec:
    memory: str = "512Mi"
    cpu: str = "1"
    min_instances: int = 1
    max_instances: int = 10
    concurrency: int = 1000
    timeout: str = "3600s"
    port: int = 8080
    extra_env: dict[str, str] = field(default_factory=dict)


REALTIME = RealtimeSpec()


@dataclass(frozen=True)
class Slo:
    """The objectives of ../shared/spec/TARGETS.md the alert policies watch."""

    # API latency P95 (ms), per function.
    latency_p95_ms: int = 300
    # Error rate: share of 5xx among a function's requests.
    error_ratio: float = 0.005
    # A queue holding more than this many tasks for `backlog_minutes` is not draining.
    queue_depth: int = 5_000
    backlog_minutes: int = 15
    # Failed delivery attempts per second on a queue (the original retried 8 %).
    failed_attempts_per_second: float = 1.0
    # Open Socket.IO connections, as a share of what max instances x concurrency can hold.
    realtime_connections_ratio: float = 0.8
    # Redis memory in use, as a share of the instance.
    redis_memory_ratio: float = 0.8
    # Evaluation window of the rate and percentile conditions.
    window_seconds: int = 300


SLO = Slo()
# Monthly billing budget alerts: shares of the budget, then of the forecast.
BUDGET_THRESHOLDS = (0.5, 0.9, 1.0)
BUDGET_FORECAST_THRESHOLD = 1.0
# Backups of the Firestore database: daily, kept this long (PITR covers the last 7 days).
FIRESTORE_BACKUP_RETENTION = "1209600s"  # 14 days

# Google APIs the stack needs; enabled first so a fresh project applies in one go.
APIS: tuple[str, ...] = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "billingbudgets.googleapis.com",
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
)
