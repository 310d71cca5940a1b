"""Data that shapes the ValorizeAI stack: functions, queues, schedules, indexes, secrets.

Everything that grows with the product lives here as plain data so that adding a function,
queue or index is one line and the stack code in ``stack.py`` never changes for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Python runtime for every function build; matches the interpreter the project is tested on.
FUNCTION_RUNTIME = "python311"

# Path inside the source bucket where the build step uploads each function's zip
# (function code + vendored ``shared`` package + requirements.txt). See README.md.
SOURCE_OBJECT_TEMPLATE = "functions/{name}.zip"


@dataclass(frozen=True)
class FunctionSpec:
    """One Cloud Run function (2nd gen), deployed on its own from ``functions/<name>``."""

    # The functions-framework target: main.py defines a function named like its folder.
    entry_point: str
    # URL prefixes under /api/ that the load balancer sends to this function. CONTRACT.md names
    # some resources differently from the function that owns them (imports -> ingest), so the
    # function name is kept as a route too: then /api/<function>/healthz works through the LB.
    routes: tuple[str, ...] = ()
    memory: str = "256Mi"
    cpu: str = "1"
    concurrency: int = 80
    min_instances: int = 0
    max_instances: int = 20
    timeout_seconds: int = 60
    # False: no allUsers invoker and no LB route; only the invoker SAs can call it (Cloud Run
    # checks their OIDC token before our code runs).
    public: bool = True
    # Cloud Tasks queues (keys of QUEUES) this function creates tasks in.
    enqueues: tuple[str, ...] = ()
    # Secret ids (keys of SECRETS) exposed to the function as environment variables.
    secrets: tuple[str, ...] = ()
    # Object admin on the statements bucket (upload, read while parsing, delete on revert).
    statements_access: bool = False
    # Targets of Cloud Tasks / Cloud Scheduler: those invoker SAs get run.invoker on it.
    task_target: bool = False
    scheduler_target: bool = False


FUNCTIONS: dict[str, FunctionSpec] = {
    "auth": FunctionSpec("auth", max_instances=10),
    "accounts": FunctionSpec("accounts"),
    "categories": FunctionSpec("categories", max_instances=10),
    "transactions": FunctionSpec("transactions", max_instances=30, enqueues=("notifications",)),
    "ingest": FunctionSpec(
        "ingest",
        routes=("imports",),
        # The worker parses statements of tens of thousands of lines inside one task.
        timeout_seconds=540,
        enqueues=("imports", "notifications"),
        secrets=("internal-shared-secret",),
        statements_access=True,
        task_target=True,
    ),
    "automate": FunctionSpec(
        "automate",
        routes=("automations",),
        timeout_seconds=300,
        enqueues=("automations", "notifications"),
        secrets=("internal-shared-secret",),
        task_target=True,
        scheduler_target=True,
    ),
    "notify": FunctionSpec(
        "notify",
        public=False,
        secrets=("internal-shared-secret", "smtp-credentials"),
        task_target=True,
    ),
    "dashboard": FunctionSpec("dashboard", max_instances=30),
    "budgets": FunctionSpec("budgets", enqueues=("notifications",)),
    # On-demand rules jobs: each page is a Cloud Task on the rules function itself.
    "rules": FunctionSpec("rules", enqueues=("automations",), task_target=True),
    "recurrences": FunctionSpec("recurrences", max_instances=10),
    "notifications": FunctionSpec("notifications", max_instances=10),
}

# Unknown /api paths and the bare domain land here; every function answers unknown paths
# with a problem+json 404, so any public one works.
DEFAULT_FUNCTION = "auth"


def routes_of(name: str) -> tuple[str, ...]:
    """The /api/<prefix> list routed to a function: its own name first, then its resources."""
    spec = FUNCTIONS[name]
    return (name, *[r for r in spec.routes if r != name])


@dataclass(frozen=True)
class QueueSpec:
    max_dispatches_per_second: float
    max_concurrent_dispatches: int
    max_attempts: int
    min_backoff: str
    max_backoff: str
    max_doublings: int = 4


QUEUES: dict[str, QueueSpec] = {
    # One task per statement; parsing is heavy, so few at once.
    "imports": QueueSpec(5, 10, max_attempts=5, min_backoff="5s", max_backoff="300s"),
    # Fan-out of one task per user; the original drained ~86 tasks/s, we allow headroom.
    "automations": QueueSpec(200, 100, max_attempts=10, min_backoff="1s", max_backoff="600s"),
    "notifications": QueueSpec(100, 50, max_attempts=8, min_backoff="1s", max_backoff="300s"),
}


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
    env_var: str
    description: str


SECRETS: dict[str, SecretSpec] = {
    # Read by the notify function (shared/src/valorize/adapters/email.py).
    "smtp-credentials": SecretSpec(
        "SMTP_CREDENTIALS", "JSON: host, port, username, password; optional starttls, from"
    ),
    "internal-shared-secret": SecretSpec(
        "INTERNAL_SHARED_SECRET", "Shared secret header for internal calls"
    ),
}


@dataclass(frozen=True)
class IndexField:
    path: str
    order: str | None = None  # "ASCENDING" | "DESCENDING"
    array_contains: bool = False


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    fields: tuple[IndexField, ...]


def _newest_first(*leading: IndexField) -> tuple[IndexField, ...]:
    # Lists order and page by sort_key = "<date>#<id>" (newest first, stable tie-break, and the
    # from/to range), so the same index serves the equality filter, the range and the cursor.
    return (*leading, IndexField("sort_key", "DESCENDING"))


# Composite indexes for users/{uid}/transactions list filters. sort_key alone is served by
# Firestore's automatic single-field index, so it needs no entry here.
FIRESTORE_INDEXES: list[IndexSpec] = [
    # The import worker's duplicate window: one account, a date range, newest first.
    IndexSpec(
        "transactions", (IndexField("account_id", "ASCENDING"), IndexField("date", "DESCENDING"))
    ),
    IndexSpec("transactions", _newest_first(IndexField("account_id", "ASCENDING"))),
    IndexSpec("transactions", _newest_first(IndexField("type", "ASCENDING"))),
    IndexSpec("transactions", _newest_first(IndexField("import_id", "ASCENDING"))),
    IndexSpec("transactions", _newest_first(IndexField("category_ids", array_contains=True))),
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
    "redis.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
)
