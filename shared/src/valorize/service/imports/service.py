"""`ImportService`: the one service object the composition root builds (bootstrap.py). Its
methods are grouped by stage, one module each, over the collaborators and helpers they
share (base.py): the upload (upload.py), reads and the review (review.py), staging
(staging.py), and commit and revert on one ledger-batch runner (ledger_runs.py)."""

from __future__ import annotations

from collections.abc import Callable

from valorize.domain.ceilings import MAX_ACCOUNTS
from valorize.service.imports.base import Publisher, RulesProvider
from valorize.service.imports.intake import MAX_STATEMENT_BYTES
from valorize.service.imports.ledger_runs import COMMIT_CHUNK, INLINE_ROWS, LedgerRuns
from valorize.service.imports.review import Review
from valorize.service.imports.staging import PROGRESS_EVERY_ROWS, Staging
from valorize.service.imports.upload import Uploads
from valorize.service.ports import Clock, EventBus, Ids, Notifier, NullBus, TaskQueue
from valorize.service.ports.accounts import AccountStore
from valorize.service.ports.imports import ImportRepository, StatementFiles
from valorize.service.ports.ledger import Ledger
from valorize.service.ports.users import UserStore


class ImportService(Uploads, Review, Staging, LedgerRuns):
    def __init__(
        self,
        user_store: UserStore,
        account_store: AccountStore,
        ledger: Ledger,
        repo: ImportRepository,
        files: StatementFiles,
        queue: TaskQueue,
        notifier: Notifier,
        publisher: Publisher,
        clock: Clock,
        ids: Ids,
        bus: EventBus | None = None,
        *,
        rules: RulesProvider | None = None,
        ledger_changed: Callable[[str], None] | None = None,
        max_bytes: int = MAX_STATEMENT_BYTES,
        max_accounts: int = MAX_ACCOUNTS,
        inline_rows: int = INLINE_ROWS,
        progress_every: int = PROGRESS_EVERY_ROWS,
        commit_chunk: int = COMMIT_CHUNK,
    ) -> None:
        self.user_store = user_store
        self.account_store = account_store
        self.ledger = ledger
        self.repo = repo
        self.files = files
        self.queue = queue
        self.notifier = notifier
        self.publisher = publisher
        self.clock = clock
        self.ids = ids
        self.bus: EventBus = bus or NullBus()
        # HOOK: the user's rules, applied to every transaction a commit creates. Wired in
        # bootstrap to the rules provider; None runs imports without rules.
        self.rules = rules
        # Called after a commit or revert changed the ledger (cache invalidation).
        self.ledger_changed = ledger_changed or (lambda _user: None)
        self.max_bytes = max_bytes
        self.max_accounts = max_accounts
        self.inline_rows = inline_rows
        self.progress_every = progress_every
        self.commit_chunk = commit_chunk
