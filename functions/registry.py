"""The one registry of functions: what each Cloud Run function is, what it serves and what it
may touch. The local stack (devstack), the gateway's routes, the packaging step and the
infrastructure (infra/cdktf) are all generated from this table, so they cannot drift; the
permissions a function gets in production follow from what it declares here.

Adding a function: create ``functions/<name>/main.py`` with a target named like the entry
point, add one entry below, and run ``nox -s tests``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    """One Cloud Run function, deployed on its own from ``functions/<name>``."""

    name: str
    # The functions-framework target defined in main.py.
    entry_point: str
    # /api/<prefix> paths the load balancer (and the local gateway) send to this function,
    # besides /api/<name> itself (CONTRACT.md names some resources differently from the
    # function that owns them: /api/imports is the ingest function).
    resources: tuple[str, ...] = ()
    # False: an internal function (Cloud Tasks / Cloud Scheduler targets only): no public
    # invoker, no load-balancer route.
    public: bool = True
    # Cloud Tasks queues (keys of QUEUES) this function creates tasks in.
    enqueues: tuple[str, ...] = ()
    # Called by Cloud Tasks (its invoker service account may call it) / by Cloud Scheduler.
    task_target: bool = False
    scheduler_target: bool = False
    # Secrets (keys of SECRETS) the function reads.
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
    Function("accounts", "accounts"),
    Function("categories", "categories", max_instances=10),
    Function("transactions", "transactions", max_instances=30, enqueues=("notifications",)),
    Function("dashboard", "dashboard", max_instances=30),
    Function("budgets", "budgets", enqueues=("notifications",)),
    # On-demand rules jobs: each page is a Cloud Task on the rules function itself.
    Function("rules", "rules", enqueues=("automations",), task_target=True),
    Function("recurrences", "recurrences", max_instances=10),
    Function(
        "automate",
        "automate",
        resources=("automations",),
        timeout_seconds=300,
        enqueues=("automations", "notifications"),
        task_target=True,
        scheduler_target=True,
    ),
    Function(
        "notify",
        "notify",
        public=False,
        secrets=("smtp-credentials",),
        task_target=True,
    ),
    Function("notifications", "notifications", max_instances=10),
    Function(
        "ingest",
        "ingest",
        resources=("imports",),
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
    )
}


def function_for(prefix: str) -> Function:
    """The function that serves /api/<prefix>."""
    for f in _FUNCTIONS:
        if prefix in f.prefixes:
            return f
    raise KeyError(prefix)
