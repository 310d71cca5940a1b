"""The imports port: where import documents, their staged rows and uploaded statement files
live (Firestore: adapters/firestore/imports.py; Cloud Storage: adapters/statement_files.py),
and the errors those adapters report to the service (service/imports/)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import BinaryIO, Protocol

from valorize.domain.errors import Contention
from valorize.domain.imports import (
    Classification,
    ExistingTransaction,
    Import,
    ImportStatus,
    StagedRow,
)
from valorize.domain.model import Transaction
from valorize.service.ports.pages import PageResult


class RowsChanged(Contention):
    """A commit/revert batch met rows or transactions another run changed: re-read. When
    re-reading keeps losing to concurrent runs, it reaches the caller as contention (409
    with Retry-After), never a 500."""

    def __init__(self, cause: str) -> None:
        super().__init__("another commit or revert of this import is running; retry")
        self.cause = cause


class StatementFileMissing(Exception):
    pass


# One transaction becoming another in a commit or revert (None: absent).
Change = tuple[Transaction | None, Transaction | None]


class StatementWriter(Protocol):
    """One statement object being written; nothing exists under its name before `close`."""

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None:
        """Give up: no object is left. Never raises."""
        ...


class StatementFiles(Protocol):
    """Where uploaded statements live (Cloud Storage)."""

    def create(self, name: str, content_type: str) -> StatementWriter: ...
    def open(self, name: str) -> AbstractContextManager[BinaryIO]:
        """Raises StatementFileMissing when the object does not exist."""
        ...

    def delete(self, name: str) -> None: ...


class RowWriter(Protocol):
    """Stages rows in batched writes (possibly several batches in flight)."""

    @property
    def written(self) -> int: ...
    def add(self, row: StagedRow) -> None: ...
    def close(self, flush: bool = True) -> None:
        """Writes what is pending (unless `flush` is false) and waits for every batch in
        flight; raises the first failure."""
        ...


class ImportRepository(Protocol):
    def create_import(self, user_id: str, record: Import) -> Import | None:
        """Create it; None when created, else the import that already has this id."""
        ...

    def get_import(self, user_id: str, import_id: str) -> Import | None: ...
    def list_imports(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Import]: ...
    def transition(
        self, user_id: str, import_id: str, decide: Callable[[Import], Import | None]
    ) -> tuple[Import | None, Import | None]:
        """Atomically: read the import, let `decide` return its new state (None: leave it),
        write it. Returns (before, after); before None when there is no such import."""
        ...

    def save_progress(self, user_id: str, import_id: str, processed: int, total: int) -> None: ...
    def existing_transactions(
        self, user_id: str, account_id: str, first: date, last: date
    ) -> Iterator[ExistingTransaction]:
        """The account's transactions dated first..last (one query, fields selected)."""
        ...

    def row_writer(self, user_id: str, import_id: str) -> RowWriter: ...
    def list_rows(
        self,
        user_id: str,
        import_id: str,
        classification: Classification | None,
        limit: int,
        cursor: str | None,
    ) -> PageResult[StagedRow]: ...
    def update_row(
        self,
        user_id: str,
        import_id: str,
        row: str,
        mutate: Callable[[Import, StagedRow], StagedRow],
    ) -> StagedRow:
        """Atomically with a read of the import (its status gates the change)."""
        ...

    def pending_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        """Per account, the credits and the debits (magnitudes) of the rows to commit."""
        ...

    def committed_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        """Per account, the credits and the debits (magnitudes) of the import's transactions
        as they are now (what a revert takes away)."""
        ...

    def chunk(
        self, user_id: str, import_id: str, status: ImportStatus, after: str | None, limit: int
    ) -> list[StagedRow]:
        """The next rows a commit (`status` committing: the included rows) or a revert
        (reverting: the committed rows) works through, in id order, after `after`."""
        ...

    def get_transactions(
        self, user_id: str, transaction_ids: Sequence[str]
    ) -> dict[str, Transaction]:
        """Those of these transactions that exist, by id."""
        ...

    def write_commit(
        self,
        user_id: str,
        import_id: str,
        created: Sequence[tuple[StagedRow, Transaction]],
        skipped: Sequence[StagedRow],
    ) -> None:
        """Create the transactions, each in the same batch as its row's mark (committed, its
        transaction id), and write the skipped rows; in big batches, several in flight.
        Balances and read models are not touched (see `settle`). Raises RowsChanged when a
        transaction exists already (another run committed its row first): the batches
        that landed stay."""
        ...

    def write_revert(
        self, user_id: str, import_id: str, rows: Sequence[StagedRow]
    ) -> list[Transaction]:
        """Delete the rows' transactions that still exist, each only as read and in the same
        batch as its row's mark (`reverted_as`: the transaction as deleted); returns them.
        Balances and read models are not touched (see `settle`). Raises RowsChanged when
        one changed or went meanwhile: the batches that landed stay."""
        ...

    def settle(
        self,
        user_id: str,
        import_id: str,
        status: ImportStatus,
        after: str | None,
        last: str,
        changes: Sequence[Change],
    ) -> Import | None:
        """Atomically, if the import is still `status` with its cursor at `after`: apply
        `changes` (old -> new transaction, None for absent) to balances, counts and read
        models, add their number to the import's `committed` (committing) or `reverted`
        (reverting) and move its cursor to `last`. Returns the import so settled; None
        (nothing written) when another run settled first or the import moved on."""
        ...
