"""Commit and revert: inline below `inline_rows` rows, else as a Cloud Task (202). Both work
through the rows on one ledger-batch runner (`_run_chunks`), resume where an interrupted run
stopped and can never write a row twice (each committed row is marked in the same batch as
its transaction; transaction ids are derived from the row; deletes carry a precondition).
Both are refused (422, the import unchanged) when they could take a balance or a sum out of
the safe range (`_check_limits`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Final

from valorize.domain.errors import Conflict, NotFound
from valorize.domain.events import BalancesChanged
from valorize.domain.imports import (
    FUZZY_DAYS,
    Classification,
    Import,
    ImportStatus,
    StagedRow,
    transaction_id,
)
from valorize.domain.limits import LedgerReach, OutOfSafeRange, Reach
from valorize.domain.model import Account, Origin, Transaction
from valorize.domain.notifications import NotificationKind, notification_id
from valorize.service.imports.base import FUNCTION, QUEUE, ImportsBase
from valorize.service.ports.imports import Change, RowsChanged

# Commits/reverts of more rows than this run as a Cloud Task (202) instead of in the request.
INLINE_ROWS: Final = 1000
# A commit or revert works through its rows in chunks of this many (see `_run_chunks`)...
COMMIT_CHUNK: Final = 5000
# ... cut short before one touches more months than this: the chunk's settling batch writes
# one document per month (Firestore takes 500 writes per batch).
CHUNK_MONTHS: Final = 300
DESCRIPTION_MAX: Final = 255

COMMIT_PATH: Final = "/api/ingest/tasks/commit"
REVERT_PATH: Final = "/api/ingest/tasks/revert"


class LedgerRuns(ImportsBase):
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
