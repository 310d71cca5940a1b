"""Staging (the Cloud Task `process`): two streaming passes over the stored file. The first
reads it whole without keeping it (validates it, counts lines for progress, finds each
statement's date range); then the statements' accounts are resolved (found, or created) and
one classifier per account loaded; the second pass classifies each line and stages it as a
row with a deterministic id, in batched writes, with live progress. Safe under duplicate
delivery (a finished import is left alone) and under a crash anywhere (a re-run stages
everything again over the same row ids)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import BinaryIO, Final, cast

from valorize.domain.events import AccountChanged
from valorize.domain.imports import (
    FUZZY_DAYS,
    Classification,
    Classifier,
    Counts,
    Import,
    ImportStatus,
    StagedRow,
    StatementSummary,
    created_account_id,
    matches_account,
    new_account_name,
    row_id,
    stage,
    statement_account_type,
    statement_bank_code,
)
from valorize.domain.model import Account, User
from valorize.domain.notifications import NotificationKind, notification_id
from valorize.domain.statements import (
    PRESETS,
    CsvMapping,
    LineError,
    StatementEnd,
    StatementError,
    StatementInfo,
    StatementLine,
    parse_statement,
)
from valorize.domain.statements.api import Format
from valorize.service.imports.base import ImportsBase
from valorize.service.ports.imports import StatementFileMissing

log = logging.getLogger(__name__)

# Realtime progress every this many staged rows; the import document at most this often.
PROGRESS_EVERY_ROWS: Final = 1000
PROGRESS_EVERY_SECONDS: Final = 2.0


class ImportFailed(Exception):
    """The import cannot go on; `reason` tells the user what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Superseded(Exception):
    """Another run of the same import finished first: stop quietly."""


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


class Staging(ImportsBase):
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
                # The ceiling on accounts (domain/ceilings.py) holds for the ones an import
                # creates too, as AccountService.create checks it.
                if len(accounts) >= self.max_accounts:
                    raise ImportFailed(
                        f"The statement is for an account you do not have yet, and you can "
                        f"have at most {self.max_accounts} accounts: choose one of yours for "
                        "it, or delete an account you no longer use, and upload it again"
                    )
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
