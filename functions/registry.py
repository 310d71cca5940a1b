"""The one registry of functions: what each Cloud Run function is, what it serves and what it
may touch. The local stack (devstack), the gateway's routes, the packaging step (``nox -s
package``) and the infrastructure (infra/cdktf) are all generated from this table, so they
cannot drift; the permissions a function gets in production follow from what it declares here.

Plain data on purpose: infra/cdktf imports this file without the ``valorize`` package, and the
shipped archives do not contain it (what a function needs of it reaches the function as
environment variables, see :func:`runtime_env`).

Adding a function: create ``functions/<name>/main.py`` with a target named like the entry
point and a ``requirements.txt``, add one entry below, and run ``nox -s tests``
(tests/unit/test_registry.py ties the entry to main.py's routes and the requirements).
"""

from __future__ import annotations

from dataclasses import dataclass

# Environment variables the shared package reads (valorize/config.py names the same ones;
# tests/unit/test_registry.py checks that they agree).
ALLOWED_QUEUES_ENV = "VALORIZE_TASK_QUEUES"
INTERNAL_CALLERS_ENV = "VALORIZE_INTERNAL_CALLERS"
INTERNAL_AUDIENCES_ENV = "VALORIZE_INTERNAL_AUDIENCES"
WARM_CLIENTS_ENV = "VALORIZE_WARM_CLIENTS"

# The service accounts whose OIDC tokens Cloud Tasks and Cloud Scheduler send (account ids;
# infra/cdktf creates them, the emails follow from the project).
TASKS_INVOKER = "tasks-invoker"
SCHEDULER_INVOKER = "scheduler-invoker"


@dataclass(frozen=True)
class Function:
    """One Cloud Run function, deployed on its own from ``functions/<name>``."""

    name: str
    # The functions-framework target defined in main.py.
    entry_point: str
    # /api/<prefix> paths the load balancer (and the local gateway) send to this function, besides
    # /api/<name> itself (../shared/spec/CONTRACT.md names some resources differently from the
    # function that owns them: /api/imports is the ingest function).
    resources: tuple[str, ...] = ()
    # False: an internal function (Cloud Tasks / Cloud Scheduler targets only): no public
    # invoker, no load-balancer route; Cloud Run's IAM refuses every other caller.
    public: bool = True
    # Paths served only to Cloud Tasks / Cloud Scheduler (exact, or a prefix ending in "/"):
    # the routes main.py marks internal=True. The load balancer and the local gateway never
    # forward them; the function verifies the invoker's OIDC token on them.
    internal_paths: tuple[str, ...] = ()
    # Cloud Tasks queues (keys of QUEUES) this function creates tasks in. The tasks adapter
    # refuses any other queue, and only these get roles/cloudtasks.enqueuer.
    enqueues: tuple[str, ...] = ()
    # Called by Cloud Tasks (its invoker service account may call it) / by Cloud Scheduler.
    task_target: bool = False
    scheduler_target: bool = False
    # Secrets (keys of infra/cdktf/config.SECRETS) the function reads.
    secrets: tuple[str, ...] = ()
    # Reads and writes statement files in the statements bucket.
    statements_access: bool = False
    memory: str = "256Mi"
    cpu: str = "1"
    concurrency: int = 80
    min_instances: int = 0
    max_instances: int = 20
    timeout_seconds: int = 60

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every /api/<prefix> routed to this function: its own name first."""
        return (self.name, *[r for r in self.resources if r != self.name])

    @property
    def internal_callers(self) -> tuple[str, ...]:
        """Account ids of the service accounts that may call the internal paths."""
        return (
            *((TASKS_INVOKER,) if self.task_target else ()),
            *((SCHEDULER_INVOKER,) if self.scheduler_target else ()),
        )

    @property
    def clients(self) -> tuple[str, ...]:
        """What an instance warms while it starts (bootstrap.Services.warm): every function
        reads Firestore and Redis; user-facing ones check tokens against the revocation feed;
        the rest as the entry says."""
        return (
            "firestore",
            "redis",
            *(("revocations",) if self.public else ()),
            *(("tasks",) if self.enqueues else ()),
            *(("statements",) if self.statements_access else ()),
        )

    def is_internal_path(self, path: str) -> bool:
        return any(
            path.startswith(p) if p.endswith("/") else path == p for p in self.internal_paths
        )


@dataclass(frozen=True)
class Queue:
    """A Cloud Tasks queue: dispatch rate, concurrency and retries."""

    name: str
    max_dispatches_per_second: float
    max_concurrent_dispatches: int
    max_attempts: int
    min_backoff: str
    max_backoff: str
    max_doublings: int = 4


_FUNCTIONS = (
    Function("auth", "auth", max_instances=10),
    # Deleting an account with many transactions is a chain of Cloud Tasks on itself.
    Function(
        "accounts",
        "accounts",
        internal_paths=("/api/accounts/tasks/",),
        enqueues=("accounts",),
        task_target=True,
    ),
    Function("categories", "categories", max_instances=10),
    # Alerts (low balance, large transaction, overspent envelope) are notify tasks.
    Function("transactions", "transactions", max_instances=30, enqueues=("notifications",)),
    Function("dashboard", "dashboard", max_instances=30),
    # Budget writes only forget cached alert profiles: no task.
    Function("budgets", "budgets"),
    # On-demand rules jobs: each page is a Cloud Task on the rules function itself; a page
    # that recategorises transactions can raise alerts (notify tasks).
    Function(
        "rules",
        "rules",
        internal_paths=("/api/rules/apply/run",),
        enqueues=("automations", "notifications"),
        task_target=True,
    ),
    Function("recurrences", "recurrences", max_instances=10),
    # Every route is a scheduler or task target: nothing for the load balancer.
    Function(
        "automate",
        "automate",
        resources=("automations",),
        public=False,
        internal_paths=(
            "/api/automations/run",
            "/api/automations/fanout",
            "/api/automations/user",
        ),
        timeout_seconds=300,
        enqueues=("automations", "notifications"),
        task_target=True,
        scheduler_target=True,
    ),
    Function(
        "notify",
        "notify",
        public=False,
        internal_paths=("/api/notify/deliver",),
        secrets=("smtp-credentials",),
        task_target=True,
    ),
    Function("notifications", "notifications", max_instances=10),
    Function(
        "ingest",
        "ingest",
        resources=("imports",),
        internal_paths=("/api/ingest/tasks/",),
        # The worker parses statements of tens of thousands of lines inside one task.
        timeout_seconds=540,
        enqueues=("imports", "notifications"),
        statements_access=True,
        task_target=True,
    ),
)

# Registry order is the local stack's port order (function N gets functions-port + N).
FUNCTIONS: dict[str, Function] = {f.name: f for f in _FUNCTIONS}

QUEUES: dict[str, Queue] = {
    q.name: q
    for q in (
        # One task per statement; parsing is heavy, so few at once.
        Queue("imports", 5, 10, max_attempts=5, min_backoff="5s", max_backoff="300s"),
        # Fan-out of one task per user; the original drained ~86 tasks/s, we allow headroom.
        Queue("automations", 200, 100, max_attempts=10, min_backoff="1s", max_backoff="600s"),
        Queue("notifications", 100, 50, max_attempts=8, min_backoff="1s", max_backoff="300s"),
        # Account deletions: one task at a time per deletion (each hands on to the next).
        Queue("accounts", 20, 20, max_attempts=10, min_backoff="1s", max_backoff="60s"),
    )
}


def function_for(prefix: str) -> Function:
    """The function that serves /api/<prefix>."""
    for f in _FUNCTIONS:
        if prefix in f.prefixes:
            return f
    raise KeyError(prefix)


def public_routes() -> dict[str, str]:
    """/api/<prefix> -> function name, for every prefix the load balancer routes."""
    return {p: f.name for f in _FUNCTIONS if f.public for p in f.prefixes}


def internal_paths() -> tuple[str, ...]:
    """Internal paths of the public functions: under a routed prefix, yet never forwarded."""
    return tuple(p for f in _FUNCTIONS if f.public for p in f.internal_paths)


def runtime_env(function: Function, invoker_email: dict[str, str]) -> dict[str, str]:
    """The registry-derived variables a function runs with, locally and in production alike:
    the queues it may enqueue on and who may call its internal paths (``invoker_email`` maps
    an invoker account id to its email). The audience (the function's own URL) and the queue
    paths depend on where it runs, so the caller adds them. The clients to warm are only
    named here: an instance without them (tests, tools) builds every client on first use."""
    return {
        ALLOWED_QUEUES_ENV: ",".join(function.enqueues),
        INTERNAL_CALLERS_ENV: ",".join(invoker_email[c] for c in function.internal_callers),
        WARM_CLIENTS_ENV: ",".join(function.clients),
    }


def _check() -> None:
    for f in _FUNCTIONS:
        unknown = set(f.enqueues) - set(QUEUES)
        assert not unknown, f"{f.name} enqueues on unknown queues {unknown}"
        assert f.internal_paths or not (f.task_target or f.scheduler_target), (
            f"{f.name} is a task/scheduler target without internal paths"
        )
        for p in f.internal_paths:
            assert any(p.startswith(f"/api/{x}/") for x in f.prefixes), (
                f"{f.name}: {p} is not under one of its prefixes"
            )
    routed = [p for f in _FUNCTIONS if f.public for p in f.prefixes]
    assert len(routed) == len(set(routed)), "a prefix is routed to two functions"


_check()
