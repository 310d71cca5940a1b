"""Imports: upload a bank statement, stage it (parse, resolve accounts, classify every line),
let the user review it, commit it as transactions, and undo it.

Where the work happens:

* `receive` + `upload` (the HTTP request): the file is checked and streamed to Cloud Storage
  as it arrives (`Intake`: counted, hashed, never held whole), then the import document is
  created (`uploaded`) and ONE Cloud Task named after the import enqueued; answers at once.
* `process` (the Cloud Task): two streaming passes over the stored file. The first reads it
  whole without keeping it (validates it, counts lines for progress, finds each statement's
  date range); the second classifies each line and stages it as a row with a deterministic
  id, in batched writes. Safe under duplicate delivery (a finished import is left alone) and
  under a crash anywhere (a re-run stages everything again over the same row ids).
* `commit` / `revert`: inline below `inline_rows` rows, else as a Cloud Task (202); both
  resume where an interrupted run stopped and can never write a row twice (each committed
  row is marked in the same batch as its transaction; transaction ids are derived from the
  row; deletes carry a precondition).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol, cast

from valorize.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from valorize.domain.events import AccountChanged, BalancesChanged
from valorize.domain.imports import (
    FUZZY_DAYS,
    Classification,
    Classifier,
    Counts,
    Import,
    ImportStatus,
    Resolution,
    StagedRow,
    StatementSummary,
    created_account_id,
    import_id_for_key,
    matches_account,
    new_account_name,
    row_id,
    stage,
    statement_account_type,
    statement_bank_code,
    transaction_id,
)
from valorize.domain.limits import LedgerReach, OutOfSafeRange, Reach
from valorize.domain.model import Account, Origin, Transaction, User
from valorize.domain.notifications import NotificationKind, NotificationRequest, notification_id
from valorize.domain.statements import (
    PRESETS,
    CsvMapping,
    LineError,
    StatementEnd,
    StatementError,
    StatementInfo,
    StatementLine,
    parse_statement,
    sniff_format,
)
from valorize.domain.statements.api import SNIFF_BYTES, Format
from valorize.service.ports import (
    Clock,
    EventBus,
    Ids,
    Notifier,
    NullBus,
    PageResult,
    TaskQueue,
)
from valorize.service.ports.accounts import AccountStore
from valorize.service.ports.imports import (
    Change,
    ImportRepository,
    RowsChanged,
    StatementFileMissing,
    StatementFiles,
    StatementWriter,
)
from valorize.service.ports.ledger import Ledger
from valorize.service.ports.users import UserStore
from valorize.service.requests.imports import UpdateImportRow

if TYPE_CHECKING:
    from valorize.domain.rules import RuleSet

log = logging.getLogger(__name__)

MAX_STATEMENT_BYTES: Final = 10 * 1024 * 1024
# Commits/reverts of more rows than this run as a Cloud Task (202) instead of in the request.
INLINE_ROWS: Final = 1000
# Realtime progress every this many staged rows; the import document at most this often.
PROGRESS_EVERY_ROWS: Final = 1000
PROGRESS_EVERY_SECONDS: Final = 2.0
# A commit or revert works through its rows in chunks of this many (see `_run_chunks`)...
COMMIT_CHUNK: Final = 5000
# ... cut short before one touches more months than this: the chunk's settling batch writes
# one document per month (Firestore takes 500 writes per batch).
CHUNK_MONTHS: Final = 300
DESCRIPTION_MAX: Final = 255

QUEUE: Final = "imports"
FUNCTION: Final = "ingest"
PROCESS_PATH: Final = "/api/ingest/tasks/process"
COMMIT_PATH: Final = "/api/ingest/tasks/commit"
REVERT_PATH: Final = "/api/ingest/tasks/revert"

# File signatures of formats people upload by mistake (answered 415 at once).
_BINARY_SIGNATURES: Final = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a spreadsheet or ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an Excel (.xls) spreadsheet"),
    (b"\x89PNG", "an image"),
    (b"\xff\xd8\xff", "an image"),
    (b"GIF8", "an image"),
    (b"\x1f\x8b", "a compressed (gzip) file"),
)


class PayloadTooLarge(DomainError):
    status = 413
    title = "Content Too Large"


class UnsupportedMedia(DomainError):
    status = 415
    title = "Unsupported Media Type"


class ImportFailed(Exception):
    """The import cannot go on; `reason` tells the user what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Superseded(Exception):
    """Another run of the same import finished first: stop quietly."""


@dataclass(frozen=True)
class Upload:
    """The upload's form; the file itself goes through an `Intake`."""

    file_name: str
    content_type: str | None = None
    format: Format | None = None
    mapping: CsvMapping | None = None
    preset: str | None = None
    account_id: str | None = None
    currency: str | None = None


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file exceeds {max_bytes // (1024 * 1024)} MiB; export a shorter period from your bank"
    )


class Intake:
    """One upload's file as it arrives, chunk by chunk: counted against the limit, hashed,
    and streamed to Cloud Storage. Only the first 8 KiB are held before anything is stored,
    to refuse a binary file and recognise the format (which names the object); from then on
    the writer holds at most one chunk. An Idempotency-Key replay stores nothing: the file is
    only hashed, to tell the same upload from another one.

    A context manager: leaving it with an error, or without `keep`, leaves no object."""

    def __init__(
        self,
        files: StatementFiles,
        object_base: str,
        max_bytes: int,
        import_id: str,
        prior: Import | None,
    ) -> None:
        self.files = files
        self.object_base = object_base
        self.max_bytes = max_bytes
        self.import_id = import_id
        # The import this Idempotency-Key already made: hash only, write nothing.
        self.prior = prior
        self.size = 0
        self.sniffed: Format | None = None
        self.object_name: str | None = None
        self._sha256 = hashlib.sha256()
        self._head = bytearray()
        self._writer: StatementWriter | None = None
        self._stored = False
        self._kept = False

    def __enter__(self) -> Intake:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._kept:
            self.discard()

    @property
    def digest(self) -> str:
        return self._sha256.hexdigest()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes)
        self._sha256.update(chunk)
        if self._writer is not None:
            self._writer.write(chunk)
        elif self.prior is None:
            self._head += chunk
            if len(self._head) >= SNIFF_BYTES:
                self._start()

    def finish(self) -> None:
        """The whole file has arrived (the writer is not closed yet: see `store`)."""
        if self._writer is None and self.prior is None:
            self._start()

    def _start(self) -> None:
        head = bytes(self._head)
        binary = _is_binary(head[:SNIFF_BYTES])
        if binary is not None:
            raise UnsupportedMedia(
                f"this is {binary}, not a bank statement: export the statement as OFX or CSV"
            )
        self.sniffed = sniff_format(head[:SNIFF_BYTES])
        self.object_name = f"{self.object_base}.{self.sniffed or 'txt'}"
        self._writer = self.files.create(self.object_name, _content_type(self.sniffed))
        self._head = bytearray()
        self._writer.write(head)

    def store(self) -> None:
        """Send the last chunk: the object exists from here on."""
        assert self._writer is not None
        self._writer.close()
        self._stored = True

    def keep(self) -> None:
        self._kept = True

    def discard(self) -> None:
        """Leave nothing behind: cancel the upload, or delete the object once stored."""
        if self._writer is None:
            return
        if not self._stored:
            self._writer.abort()
        elif self.object_name is not None:
            try:
                self.files.delete(self.object_name)
            except Exception:  # the bucket's lifecycle rule deletes it after 90 days
                log.exception("deleting the abandoned statement %s failed", self.object_name)
        self._writer = None


class Publisher(Protocol):
    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None: ...


RulesProvider = Callable[[str], "RuleSet | None"]


@dataclass
class _Scan:
    """What the first pass learns about one statement."""

    info: StatementInfo
    lines: int = 0
    errors: int = 0
    first: date | None = None
    last: date | None = None
    end: StatementEnd | None = None
    first_error: LineError | None = None
    credits: int = 0
    debits: int = 0

    def see(self, line: StatementLine) -> None:
        self.lines += 1
        if line.amount > 0:
            self.credits += line.amount
        else:
            self.debits -= line.amount
        day = line.date
        if self.first is None or day < self.first:
            self.first = day
        if self.last is None or day > self.last:
            self.last = day


@dataclass
class _Progress:
    publish: Callable[[int], None]
    save: Callable[[int], None]
    every_rows: int
    every_seconds: float
    last_rows: int = 0
    last_save: float = field(default_factory=time.monotonic)

    def tick(self, done: int) -> None:
        if done - self.last_rows >= self.every_rows:
            self.last_rows = done
            self.publish(done)
        now = time.monotonic()
        if now - self.last_save >= self.every_seconds:
            self.last_save = now
            self.save(done)


def _is_binary(head: bytes) -> str | None:
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            return what
    if b"\x00" in head[:8192] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file"
    return None


class ImportService:
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
        self.inline_rows = inline_rows
        self.progress_every = progress_every
        self.commit_chunk = commit_chunk

    # --- upload -------------------------------------------------------------------------------

    def receive(self, user_id: str, idempotency_key: str | None) -> Intake:
        """Get ready for an upload's file (see `Intake`); then `upload` with its form."""
        prior: Import | None = None
        if idempotency_key is not None:
            import_id = import_id_for_key(user_id, idempotency_key)
            prior = self.repo.get_import(user_id, import_id)
            # The object is named per attempt, so a concurrent retry never overwrites the
            # file of the attempt that creates the import.
            object_id = self.ids.new_id()
        else:
            import_id = object_id = self.ids.new_id()
        base = f"imports/{user_id}/{object_id}"
        return Intake(self.files, base, self.max_bytes, import_id, prior)

    def upload(self, user_id: str, up: Upload, intake: Intake) -> tuple[Import, bool]:
        """Check the form, keep the file the intake received, create the import, enqueue its
        processing. Returns the import and whether this was an Idempotency-Key replay of an
        earlier upload. On any error nothing is left (the intake's object is dropped)."""
        if (
            up.account_id is not None
            and self.account_store.get_account(user_id, up.account_id) is None
        ):
            raise ValidationFailed.on("account_id", "no such account")
        if up.format == "ofx" and (up.mapping is not None or up.preset is not None):
            raise ValidationFailed.on("mapping", "a column mapping or preset applies to CSV only")
        if up.preset is not None and up.preset not in PRESETS and up.preset != "generic":
            known = ", ".join([*sorted(PRESETS), "generic"])
            raise ValidationFailed.on("preset", f"unknown preset; known: {known}")
        intake.finish()
        if intake.prior is not None:
            return self._replay(intake.prior, intake.digest), True
        fmt: Format | None = up.format or intake.sniffed
        if fmt == "ofx" and up.format is None:
            mapping, preset = None, None  # a sniffed OFX ignores CSV options
        else:
            mapping = up.mapping.model_dump_json() if up.mapping else None
            preset = up.preset
        assert intake.object_name is not None
        now = self.clock.now()
        record = Import(
            id=intake.import_id,
            status=ImportStatus.UPLOADED,
            file_name=_file_name(up.file_name),
            object_name=intake.object_name,
            size=intake.size,
            sha256=intake.digest,
            created_at=now,
            updated_at=now,
            format=fmt,
            preset=preset,
            mapping=mapping,
            currency=up.currency,
            account_id=up.account_id,
        )
        intake.store()
        prior = self.repo.create_import(user_id, record)
        if prior is not None:  # a concurrent retry with the same key won
            return self._replay(prior, intake.digest), True
        intake.keep()
        try:
            self.queue.enqueue(
                QUEUE,
                FUNCTION,
                PROCESS_PATH,
                {"user_id": user_id, "import_id": record.id},
                name=f"import-{record.id}",
            )
        except Exception as error:
            log.exception("enqueueing import %s failed", record.id)
            self._fail(user_id, record.id, "The import could not be queued; upload the file again")
            raise Unavailable("the import queue is unavailable; retry shortly") from error
        return record, False

    @staticmethod
    def _replay(prior: Import, digest: str) -> Import:
        if prior.sha256 != digest:
            raise ValidationFailed.on(
                "Idempotency-Key", "reused with a different request (another file)"
            )
        return prior

    # --- reads --------------------------------------------------------------------------------

    def get(self, user_id: str, import_id: str) -> Import:
        found = self.repo.get_import(user_id, import_id)
        if found is None:
            raise NotFound("import not found")
        return found

    def list_imports(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Import]:
        return self.repo.list_imports(user_id, limit, cursor)

    def rows(
        self,
        user_id: str,
        import_id: str,
        classification: Classification | None,
        limit: int,
        cursor: str | None,
    ) -> PageResult[StagedRow]:
        self.get(user_id, import_id)
        return self.repo.list_rows(user_id, import_id, classification, limit, cursor)

    # --- review -------------------------------------------------------------------------------

    def update_row(self, user_id: str, import_id: str, row: str, cmd: UpdateImportRow) -> StagedRow:
        self.get(user_id, import_id)

        def mutate(record: Import, current: StagedRow) -> StagedRow:
            if record.status is not ImportStatus.READY:
                raise Conflict(
                    f"rows can change only while the import is ready for review; it is "
                    f"{record.status.value}"
                )
            return _review(current, cmd)

        return self.repo.update_row(user_id, import_id, row, mutate)

    # --- the worker ---------------------------------------------------------------------------

    def process(self, user_id: str, import_id: str, *, last_attempt: bool = False) -> Import | None:
        """The Cloud Task: stage the import. A delivery for an import that is already past
        processing (ready, committed, failed, ...) does nothing."""
        now = self.clock.now()

        before, record = self.repo.transition(user_id, import_id, lambda r: r.start(now))
        if record is None:
            return before
        try:
            return self._stage(user_id, record)
        except StatementError as error:
            return self._fail(user_id, import_id, error.reason)
        except ImportFailed as error:
            return self._fail(user_id, import_id, error.reason)
        except Superseded:
            return self.repo.get_import(user_id, import_id)
        except Exception:
            if last_attempt:
                log.exception("import %s failed on its last attempt", import_id)
                self._fail(
                    user_id,
                    import_id,
                    "The file could not be processed because of an error on our side; "
                    "upload it again in a few minutes",
                )
            raise

    def _parse(
        self, stream: BinaryIO, record: Import, currency: str
    ) -> Iterator[StatementInfo | StatementLine | LineError | StatementEnd]:
        mapping = CsvMapping.model_validate_json(record.mapping) if record.mapping else None
        fmt = cast(Format, record.format) if record.format in ("ofx", "csv") else None
        return parse_statement(stream, fmt, mapping, record.preset, currency=currency)

    def _stage(self, user_id: str, record: Import) -> Import:
        user = self.user_store.get_user(user_id)
        if user is None:
            raise ImportFailed("The user no longer exists")
        chosen: Account | None = None
        if record.account_id is not None:
            chosen = self.account_store.get_account(user_id, record.account_id)
            if chosen is None:
                raise ImportFailed(
                    "The account you chose no longer exists; upload the file again and choose "
                    "another account (or none, to have it detected)"
                )
        currency = (chosen.currency if chosen else None) or record.currency
        currency = currency or user.preferred_currency

        # Pass 1: read the whole file once, keeping only a summary per statement.
        scans = self._scan(record, currency)
        total = sum(s.lines + s.errors for s in scans)
        accounts = self._resolve_accounts(user, record, scans, chosen)
        classifiers = self._classifiers(user_id, scans, accounts)
        self.repo.save_progress(user_id, record.id, 0, total)
        self._event(user_id, "import.progress", record.id, processed=0, total=total)

        # Pass 2: classify and stage every line, batched, with live progress.
        counts = {c: 0 for c in Classification}
        writer = self.repo.row_writer(user_id, record.id)
        progress = _Progress(
            publish=lambda done: self._event(
                user_id, "import.progress", record.id, processed=done, total=total
            ),
            save=lambda done: self._checkpoint(user_id, record.id, done, total),
            every_rows=self.progress_every,
            every_seconds=PROGRESS_EVERY_SECONDS,
        )
        account_of = {index: account.id for index, (account, _) in accounts.items()}
        staged_rows = 0
        try:
            with self.files.open(record.object_name) as stream:
                for event in self._parse(stream, record, currency):
                    if isinstance(event, StatementLine):
                        account_id = account_of[event.statement]
                        verdict = classifiers[account_id].classify(event)
                        row = stage(event, account_id, verdict)
                    elif isinstance(event, LineError):
                        row = StagedRow(
                            id=row_id(event.statement, event.ordinal),
                            statement=event.statement,
                            ordinal=event.ordinal,
                            line_no=event.line_no,
                            classification=Classification.ERROR,
                            include=False,
                            account_id=account_of.get(event.statement),
                            reason=event.reason,
                        )
                    else:
                        continue
                    counts[row.classification] += 1
                    writer.add(row)
                    # Lines classified and handed to the writer (a few batches may still be
                    # in flight; the final event comes after they all landed).
                    staged_rows += 1
                    progress.tick(staged_rows)
        except StatementFileMissing:
            writer.close(flush=False)
            raise ImportFailed(
                "The uploaded file is no longer stored (uploads are kept 90 days); upload it again"
            ) from None
        except BaseException:
            # Whatever stopped us (a bad file found late, a crash): batches in flight land,
            # pending rows are dropped; a re-run stages everything again anyway.
            writer.close(flush=False)
            raise
        writer.close()

        summaries = tuple(
            StatementSummary(
                index=s.info.index,
                kind=s.info.kind.value,
                currency=s.info.currency,
                account_id=accounts[s.info.index][0].id,
                account_created=accounts[s.info.index][1],
                lines=s.lines,
                errors=s.errors,
                bank_id=statement_bank_code(s.info),
                account_number=s.info.account_id,
                start=s.first,
                end=s.last,
                ledger_balance=s.end.ledger_balance if s.end else None,
                preset=s.info.preset,
                credits=s.credits,
                debits=s.debits,
            )
            for s in scans
        )
        done_at = self.clock.now()
        final = Counts(**{c.value: n for c, n in counts.items()})
        days = [d for s in scans for d in (s.first, s.last) if d is not None]
        account_ids = tuple(dict.fromkeys(a.id for a, _ in accounts.values()))
        _, ready = self.repo.transition(
            user_id,
            record.id,
            lambda r: r.staged(done_at, final, total, summaries, account_ids, days),
        )
        if ready is None:
            raise Superseded()
        self._event(user_id, "import.progress", record.id, processed=total, total=total)
        self._event(
            user_id,
            "import.ready",
            record.id,
            status=ready.status.value,
            counts=final.as_dict(),
            account_ids=list(ready.account_ids),
        )
        self._notify(
            user_id,
            notification_id("import", record.id, "ready"),
            NotificationKind.IMPORT_FINISHED,
            "Statement ready for review",
            f"{ready.file_name}: {final.new} new, {final.duplicate} already imported, "
            f"{final.conflict} to decide, {final.error} unreadable",
            {"import_id": record.id, "status": "ready", **final.as_dict()},
        )
        return ready

    def _checkpoint(self, user_id: str, import_id: str, done: int, total: int) -> None:
        current = self.repo.get_import(user_id, import_id)
        if current is None or current.status is not ImportStatus.PROCESSING:
            raise Superseded()
        self.repo.save_progress(user_id, import_id, done, total)

    def _scan(self, record: Import, currency: str) -> list[_Scan]:
        scans: dict[int, _Scan] = {}
        try:
            with self.files.open(record.object_name) as stream:
                for event in self._parse(stream, record, currency):
                    if isinstance(event, StatementLine):
                        scans[event.statement].see(event)
                    elif isinstance(event, LineError):
                        scan = scans[event.statement]
                        scan.errors += 1
                        scan.first_error = scan.first_error or event
                    elif isinstance(event, StatementInfo):
                        scans[event.index] = _Scan(event)
                    else:
                        scans[event.index].end = event
        except StatementFileMissing:
            raise ImportFailed(
                "The uploaded file is no longer stored (uploads are kept 90 days); upload it again"
            ) from None
        found = list(scans.values())
        lines = sum(s.lines for s in found)
        errors = sum(s.errors for s in found)
        if lines == 0 and errors:
            first = next(s.first_error for s in found if s.first_error is not None)
            assert first is not None
            raise ImportFailed(
                f"None of the {errors} rows could be read (line {first.line_no}: "
                f"{first.reason}); check the column mapping or choose the bank's preset"
            )
        if lines == 0:
            raise ImportFailed(
                "The statement has no transactions; check the period you exported from your bank"
            )
        return found

    # --- accounts -----------------------------------------------------------------------------

    def _all_accounts(self, user_id: str) -> list[Account]:
        found: list[Account] = []
        cursor: str | None = None
        while True:
            page = self.account_store.list_accounts(user_id, 200, cursor)
            found += page.items
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def _resolve_accounts(
        self, user: User, record: Import, scans: Sequence[_Scan], chosen: Account | None
    ) -> dict[int, tuple[Account, bool]]:
        """Statement index -> (account, created by this import)."""
        if chosen is not None:
            for scan in scans:
                if scan.info.currency != chosen.currency:
                    raise ImportFailed(
                        f"The statement is in {scan.info.currency} but the account "
                        f"“{chosen.name}” holds {chosen.currency}: choose an account in "
                        f"{scan.info.currency}, or none to have one detected or created"
                    )
            # The user's choice wins, for every statement of the file.
            return {scan.info.index: (chosen, False) for scan in scans}
        accounts = self._all_accounts(user.id)
        resolved: dict[int, tuple[Account, bool]] = {}
        for scan in scans:
            info = scan.info
            preset = PRESETS.get(info.preset or "")
            name = new_account_name(info, user.locale, preset.title if preset else None)
            own_id = created_account_id(record.id, info.index)
            # The account this import created on an earlier (crashed) run comes first.
            candidates = sorted(accounts, key=lambda a: (a.id != own_id, a.created_at, a.id))
            match = next((a for a in candidates if matches_account(a, info, name)), None)
            if match is not None:
                resolved[info.index] = (match, match.id == own_id)
                continue
            now = self.clock.now()
            account = Account(
                id=own_id,
                name=name,
                type=statement_account_type(info),
                currency=info.currency,
                opening_balance=0,
                balance=0,
                created_at=now,
                updated_at=now,
                bank_code=statement_bank_code(info),
                bank_name=(info.org or (preset.title.split(" — ")[0] if preset else None)),
                number=info.account_id,
            )
            existing = self.account_store.get_account(user.id, own_id)
            if existing is None:
                self.account_store.add_account(user.id, account)
                self.bus.publish(AccountChanged(user.id, account))
            else:
                account = existing
            accounts.append(account)
            resolved[info.index] = (account, True)
        return resolved

    def _classifiers(
        self,
        user_id: str,
        scans: Sequence[_Scan],
        accounts: Mapping[int, tuple[Account, bool]],
    ) -> dict[str, Classifier]:
        """One classifier per account, loaded with one query per account over the dates of
        its statements ± the fuzzy window."""
        windows: dict[str, tuple[date, date]] = {}
        for scan in scans:
            if scan.first is None or scan.last is None:
                continue
            account_id = accounts[scan.info.index][0].id
            lo = scan.first - timedelta(days=FUZZY_DAYS)
            hi = scan.last + timedelta(days=FUZZY_DAYS)
            if account_id in windows:
                old_lo, old_hi = windows[account_id]
                lo, hi = min(lo, old_lo), max(hi, old_hi)
            windows[account_id] = (lo, hi)
        classifiers: dict[str, Classifier] = {}
        for account, _ in accounts.values():
            if account.id in classifiers:
                continue
            window = windows.get(account.id)
            existing = (
                self.repo.existing_transactions(user_id, account.id, *window) if window else ()
            )
            classifiers[account.id] = Classifier(existing)
        return classifiers

    # --- commit -------------------------------------------------------------------------------

    def commit(self, user_id: str, import_id: str) -> tuple[Import, bool]:
        """Start (or resume) committing. Returns the import and whether the work continues
        in a Cloud Task (the caller answers 202) rather than having been done inline."""
        now = self.clock.now()

        current = self.repo.get_import(user_id, import_id)
        if current is not None and current.status is ImportStatus.READY:
            self._check_commit_limits(user_id, current)
        before, record = self.repo.transition(user_id, import_id, lambda r: r.begin_commit(now))
        if before is None:
            raise NotFound("import not found")
        if record is None:
            if before.status is ImportStatus.COMMITTED:
                return before, False
            raise Conflict(_cannot("commit", before.status))
        work = record.counts.new + record.counts.conflict + record.counts.duplicate
        if work - record.committed > self.inline_rows:
            self._enqueue(COMMIT_PATH, "commit", user_id, record)
            return record, True
        return self.run_commit(user_id, import_id), False

    def _check_commit_limits(self, user_id: str, record: Import) -> None:
        """What every line of the file would move is a bound of what the included ones do:
        when that passes, the rows need not be read (a read of every row costs about as
        much as a third of the commit on the emulator)."""
        bound: dict[str, tuple[int, int]] = {}
        for s in record.statements:
            if s.credits is None or s.debits is None:
                break
            credits, debits = bound.get(s.account_id, (0, 0))
            bound[s.account_id] = (credits + s.credits, debits + s.debits)
        else:
            with suppress(OutOfSafeRange):
                self._check_limits(user_id, bound, undo=False)
                return
        self._check_limits(user_id, self.repo.pending_amounts(user_id, record.id), undo=False)

    def _check_limits(
        self, user_id: str, amounts: Mapping[str, tuple[int, int]], undo: bool
    ) -> None:
        """Refuse (422, the import unchanged) a commit or revert that could take a balance or
        an all-time sum out of the safe range at any point: it runs in many batches, so its
        credits and its debits count apart (domain/limits.py), and this is checked once,
        before the first batch, against what is stored now."""
        accounts = self.account_store.get_accounts(user_id, sorted(amounts))
        balances: dict[str, Reach] = {}
        sums: dict[tuple[str, ...], int] = {}
        for account_id, (credits, debits) in amounts.items():
            account = accounts.get(account_id)
            if account is None:
                continue  # its rows are skipped (commit) or its transactions gone (revert)
            balances[account_id] = Reach(-credits, debits) if undo else Reach(-debits, credits)
            if not undo:  # a revert only lowers the income and expense sums
                for kind, size in (("income", credits), ("expense", debits)):
                    path = (account.currency, kind)
                    sums[path] = sums.get(path, 0) + size
        reach = LedgerReach(balances, {p: Reach.of(v) for p, v in sums.items() if v})
        self.ledger.check_limits(user_id, reach, "rows")

    def run_commit(self, user_id: str, import_id: str) -> Import:
        record = self.get(user_id, import_id)
        if record.status is not ImportStatus.COMMITTING:
            return record  # committed already (a duplicate task), or not asked to
        accounts = self.account_store.get_accounts(user_id, list(record.account_ids))
        ruleset = self.rules(user_id) if self.rules is not None else None
        taken = self._fitids_in_ledger(user_id, record, accounts)
        now = self.clock.now()

        def made(row: StagedRow, account: Account) -> Transaction:
            txn = self._transaction(import_id, row, account, now)
            return ruleset.apply(txn).transaction if ruleset else txn

        def write(rows: Sequence[StagedRow]) -> list[Change]:
            """Commit the chunk's rows; what their transactions move."""
            changes: list[Change] = []
            created: list[tuple[StagedRow, Transaction]] = []
            skipped: list[StagedRow] = []
            # Rows an interrupted run committed but did not settle: their transactions count
            # as they were created (rebuilt the same way if their owner changed them since:
            # an edit or a delete moved the models from there by itself).
            resumed = [r.transaction_id for r in rows if r.committed and r.transaction_id]
            stored = self.repo.get_transactions(user_id, resumed) if resumed else {}
            for row in rows:
                account = accounts.get(row.account_id or "")
                if row.committed:
                    txn = stored.get(row.transaction_id or "")
                    if (txn is None or txn.updated_at != txn.created_at) and account:
                        txn = made(row, account)
                    if txn is not None:
                        changes.append((None, txn))
                elif account is None:
                    skipped.append(
                        replace(row, include=False, reason="its account was deleted meanwhile")
                    )
                elif (
                    row.classification is Classification.NEW
                    and row.fitid
                    and row.fitid in taken.get(account.id, ())
                ):
                    skipped.append(
                        replace(
                            row,
                            classification=Classification.DUPLICATE,
                            include=False,
                            reason="a transaction with this FITID reached the account after "
                            "the statement was staged (another import?)",
                        )
                    )
                else:
                    txn = made(row, account)
                    created.append((replace(row, transaction_id=txn.id), txn))
                    changes.append((None, txn))
            self.repo.write_commit(user_id, import_id, created, skipped)
            return changes

        estimate = record.counts.new + record.counts.conflict
        record, deltas, months = self._run_chunks(user_id, record, write, estimate)
        finished_at = self.clock.now()
        _, committed = self.repo.transition(
            user_id, import_id, lambda r: r.finish_commit(finished_at)
        )
        if committed is None:
            return self.get(user_id, import_id)
        self._after_ledger_change(
            user_id, committed.account_ids, deltas, sorted(months), "import.committed", import_id
        )
        self._event(
            user_id,
            "import.committed",
            import_id,
            status=committed.status.value,
            transactions=committed.committed,
            account_ids=list(committed.account_ids),
        )
        self._notify(
            user_id,
            notification_id("import", import_id, "committed"),
            NotificationKind.IMPORT_FINISHED,
            "Import finished",
            f"{committed.file_name}: {committed.committed} transactions imported",
            {"import_id": import_id, "status": "committed", "transactions": committed.committed},
        )
        return committed

    def _fitids_in_ledger(
        self, user_id: str, record: Import, accounts: Mapping[str, Account]
    ) -> dict[str, set[str]]:
        """FITIDs that reached each account since staging, not from this import: checked
        again at commit so two overlapping imports committed one after the other cannot
        both create the same bank transaction."""
        if record.first_date is None or record.last_date is None:
            return {}
        lo = record.first_date - timedelta(days=FUZZY_DAYS)
        hi = record.last_date + timedelta(days=FUZZY_DAYS)
        taken: dict[str, set[str]] = {}
        for account_id in accounts:
            taken[account_id] = {
                txn.fitid
                for txn in self.repo.existing_transactions(user_id, account_id, lo, hi)
                if txn.fitid and txn.import_id != record.id
            }
        return taken

    @staticmethod
    def _transaction(
        import_id: str, row: StagedRow, account: Account, now: datetime
    ) -> Transaction:
        assert row.date is not None and row.amount is not None
        description = (row.description or row.name or row.memo or "").strip()
        return Transaction(
            id=transaction_id(import_id, row.id),
            account_id=account.id,
            amount=row.amount,
            currency=account.currency,
            date=row.date,
            description=(description or "(no description)")[:DESCRIPTION_MAX],
            created_at=now,
            updated_at=now,
            origin=Origin.IMPORT,
            fitid=row.fitid,
            import_id=import_id,
        )

    # --- revert -------------------------------------------------------------------------------

    def revert(self, user_id: str, import_id: str) -> tuple[Import, bool]:
        """Start (or resume) undoing a committed import: its transactions go, balances and
        read models follow. Returns the import and whether it continues in a Cloud Task."""
        now = self.clock.now()

        current = self.repo.get_import(user_id, import_id)
        if current is not None and current.status is ImportStatus.COMMITTED:
            self._check_limits(user_id, self.repo.committed_amounts(user_id, import_id), undo=True)
        before, record = self.repo.transition(user_id, import_id, lambda r: r.begin_revert(now))
        if before is None:
            raise NotFound("import not found")
        if record is None:
            if before.status is ImportStatus.REVERTED:
                return before, False
            raise Conflict(_cannot("revert", before.status))
        if record.committed - record.reverted > self.inline_rows:
            self._enqueue(REVERT_PATH, "revert", user_id, record)
            return record, True
        return self.run_revert(user_id, import_id), False

    def run_revert(self, user_id: str, import_id: str) -> Import:
        record = self.get(user_id, import_id)
        if record.status is not ImportStatus.REVERTING:
            return record

        def write(rows: Sequence[StagedRow]) -> list[Change]:
            """Delete the chunk's transactions; what they move. A row whose transaction an
            interrupted run deleted (not yet settled) counts as it was deleted."""
            changes: list[Change] = [(r.reverted_as, None) for r in rows if r.reverted_as]
            rest = [r for r in rows if r.reverted_as is None]
            changes += [(t, None) for t in self.repo.write_revert(user_id, import_id, rest)]
            return changes

        record, deltas, _ = self._run_chunks(user_id, record, write, record.committed)
        finished_at = self.clock.now()
        _, reverted = self.repo.transition(
            user_id, import_id, lambda r: r.finish_revert(finished_at)
        )
        if reverted is None:
            return self.get(user_id, import_id)
        accounts_changed = tuple(dict.fromkeys([*reverted.account_ids, *deltas]))
        self._after_ledger_change(
            user_id,
            accounts_changed,
            deltas,
            _months_between(reverted.first_date, reverted.last_date),
            "import.reverted",
            import_id,
        )
        self._event(
            user_id,
            "import.reverted",
            import_id,
            status=reverted.status.value,
            transactions=reverted.reverted,
        )
        return reverted

    # --- the ledger-batch runner of commit and revert -----------------------------------------

    def _run_chunks(
        self,
        user_id: str,
        record: Import,
        write: Callable[[Sequence[StagedRow]], list[Change]],
        total: int,
    ) -> tuple[Import, dict[str, int], set[str]]:
        """Work through the rows after the import's cursor, a chunk at a time: `write` writes
        the chunk's transactions (in big batches, several in flight) and says what they
        move; then one settling batch applies that to balances and read models and moves the
        cursor past the chunk, if the cursor is still where this run found it. So a killed
        run resumes at the first unsettled chunk, and a chunk is settled exactly once however
        many runs race (the loser re-reads and carries on after the winner's cursor).

        Returns the import as last settled (or as another run left it), how much each
        account's balance moved and the months touched, in this run."""
        status = record.status
        moved: dict[str, int] = {}
        months: set[str] = set()
        retries = 0

        def read(after: str | None) -> list[StagedRow]:
            return _within_months(
                self.repo.chunk(user_id, record.id, status, after, self.commit_chunk)
            )

        # The next chunk is read while this one is written (on the emulator reading a chunk
        # takes about half as long as writing it).
        reader = ThreadPoolExecutor(1, thread_name_prefix="next-chunk")
        ahead: tuple[str, Future[list[StagedRow]]] | None = None
        try:
            while record.status is status:
                if ahead is not None and ahead[0] == record.cursor:
                    rows = ahead[1].result()
                else:
                    rows = read(record.cursor)
                ahead = None
                if not rows:
                    break
                ahead = (rows[-1].id, reader.submit(read, rows[-1].id))
                try:
                    changes = write(rows)
                except RowsChanged:
                    # Another run wrote some of these rows first: read the chunk again.
                    retries += 1
                    if retries > 5:
                        raise
                    record = self.get(user_id, record.id)
                    continue
                settled = self.repo.settle(
                    user_id, record.id, status, record.cursor, rows[-1].id, changes
                )
                if settled is None:  # another run settled this chunk first: go on after it
                    record = self.get(user_id, record.id)
                    continue
                retries = 0
                record = settled
                for old, new in changes:
                    for txn, sign in ((old, -1), (new, 1)):
                        if txn is not None:
                            moved[txn.account_id] = moved.get(txn.account_id, 0) + sign * txn.amount
                            months.add(txn.date.isoformat()[:7])
                done = record.committed if status is ImportStatus.COMMITTING else record.reverted
                self._event(
                    user_id,
                    "import.progress",
                    record.id,
                    processed=done,
                    total=max(total, done),
                    status=status.value,
                )
        finally:
            reader.shutdown(wait=False, cancel_futures=True)
        return record, moved, months

    # --- helpers ------------------------------------------------------------------------------

    def _enqueue(self, path: str, what: str, user_id: str, record: Import) -> None:
        self.queue.enqueue(
            QUEUE,
            FUNCTION,
            path,
            {"user_id": user_id, "import_id": record.id},
            # Unique per request: a commit asked again after its task gave up runs again.
            name=f"import-{what}-{record.id}-{record.requests}",
        )

    def _after_ledger_change(
        self,
        user_id: str,
        account_ids: Sequence[str],
        deltas: Mapping[str, int],
        months: Sequence[str],
        cause: str,
        import_id: str,
    ) -> None:
        """One cache invalidation, one balance event (with how much each account moved in
        this run, for the low-balance alert) and one `dashboard.changed`, rather than an
        event per transaction (an import can hold tens of thousands)."""
        self.ledger_changed(user_id)
        if account_ids:
            self.bus.publish(
                BalancesChanged(user_id, tuple(account_ids), tuple(sorted(deltas.items())))
            )
        self.publisher.publish(
            user_id,
            "dashboard.changed",
            {"months": list(months), "cause": cause, "import_id": import_id},
        )

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


def _review(row: StagedRow, cmd: UpdateImportRow) -> StagedRow:
    include, resolution = cmd.include, cmd.resolution
    if row.classification is Classification.ERROR:
        if include or resolution is not None:
            raise ValidationFailed.on(
                "include",
                f"line {row.line_no} could not be read ({row.reason}); it cannot be imported",
            )
        return row
    if row.classification is Classification.CONFLICT:
        if resolution is None:
            assert include is not None
            resolution = Resolution.IMPORT_ANYWAY if include else Resolution.KEEP_EXISTING
        wanted = resolution is Resolution.IMPORT_ANYWAY
        if include is not None and include != wanted:
            raise ValidationFailed.on(
                "include", f"contradicts resolution {resolution.value}; give one of them"
            )
        return replace(row, include=wanted, resolution=resolution)
    if resolution is not None:
        raise ValidationFailed.on("resolution", "only a conflict takes a resolution")
    assert include is not None
    return replace(row, include=include)


def _cannot(what: str, status: ImportStatus) -> str:
    hints = {
        ImportStatus.UPLOADED: "it has not been processed yet; wait for it to be ready",
        ImportStatus.PROCESSING: "it is still being processed; wait for it to be ready",
        ImportStatus.FAILED: "it failed; upload the file again",
        ImportStatus.READY: "nothing of it was committed",
        ImportStatus.REVERTED: "it was reverted",
        ImportStatus.REVERTING: "it is being reverted",
        ImportStatus.COMMITTING: "it is being committed; wait for it to finish",
        ImportStatus.COMMITTED: "it is committed already",
    }
    return f"cannot {what} this import: {hints.get(status, status.value)}"


def _within_months(rows: list[StagedRow]) -> list[StagedRow]:
    seen: set[str] = set()
    for i, row in enumerate(rows):
        for day in (row.date, row.reverted_as.date if row.reverted_as else None):
            if day is not None:
                seen.add(day.isoformat()[:7])
        if len(seen) > CHUNK_MONTHS:
            return rows[:i]
    return rows


def _months_between(first: date | None, last: date | None) -> list[str]:
    if first is None or last is None:
        return []
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _file_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = "".join(c for c in base if c.isprintable())
    return cleaned[:255] or "statement"


def _content_type(fmt: str | None) -> str:
    return {"ofx": "application/x-ofx", "csv": "text/csv"}.get(fmt or "", "text/plain")
