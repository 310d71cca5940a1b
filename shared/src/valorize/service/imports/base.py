"""What every stage of an import shares: the collaborators the service is built with
(service.py sets them), the import looked up by id, and how an outcome is told (realtime
events, notifications, and the failure that ends an import)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from valorize.domain.errors import NotFound
from valorize.domain.imports import Import
from valorize.domain.notifications import NotificationKind, NotificationRequest, notification_id
from valorize.service.ports import Clock, EventBus, Ids, Notifier, TaskQueue
from valorize.service.ports.accounts import AccountStore
from valorize.service.ports.imports import ImportRepository, StatementFiles
from valorize.service.ports.ledger import Ledger
from valorize.service.ports.users import UserStore

if TYPE_CHECKING:
    from valorize.domain.rules import RuleSet

log = logging.getLogger(__name__)

# Where an import's Cloud Tasks go (its processing, and the commits and reverts too big to
# run in the request).
QUEUE: Final = "imports"
FUNCTION: Final = "ingest"


class Publisher(Protocol):
    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None: ...


RulesProvider = Callable[[str], "RuleSet | None"]


class ImportsBase:
    """The state and the helpers of `ImportService` (service.py) that the stages (upload.py,
    review.py, staging.py, ledger_runs.py) have in common."""

    user_store: UserStore
    account_store: AccountStore
    ledger: Ledger
    repo: ImportRepository
    files: StatementFiles
    queue: TaskQueue
    notifier: Notifier
    publisher: Publisher
    clock: Clock
    ids: Ids
    bus: EventBus
    rules: RulesProvider | None
    ledger_changed: Callable[[str], None]
    max_bytes: int
    max_accounts: int
    inline_rows: int
    progress_every: int
    commit_chunk: int

    def get(self, user_id: str, import_id: str) -> Import:
        found = self.repo.get_import(user_id, import_id)
        if found is None:
            raise NotFound("import not found")
        return found

    def _fail(self, user_id: str, import_id: str, reason: str) -> Import | None:
        now = self.clock.now()

        before, failed = self.repo.transition(user_id, import_id, lambda r: r.failed(reason, now))
        if failed is None:
            return before
        self._event(user_id, "import.failed", import_id, status="failed", reason=reason)
        self._notify(
            user_id,
            notification_id("import", import_id, "failed"),
            NotificationKind.IMPORT_FAILED,
            "Import failed",
            f"{failed.file_name}: {reason}",
            {"import_id": import_id, "status": "failed", "reason": reason},
        )
        return failed

    def _event(self, user_id: str, name: str, import_id: str, **data: Any) -> None:
        self.publisher.publish(user_id, name, {"id": import_id, **data})

    def _notify(
        self,
        user_id: str,
        nid: str,
        kind: NotificationKind,
        title: str,
        body: str,
        data: dict[str, Any],
    ) -> None:
        try:
            self.notifier.notify(NotificationRequest(user_id, nid, kind, title, body, data))
        except Exception:
            # The import's outcome is stored and published already; a notification must not
            # turn it into a failure (the task would be retried for nothing).
            log.exception("notification %s could not be queued", nid)
