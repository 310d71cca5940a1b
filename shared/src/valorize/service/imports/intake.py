"""An upload's file and form: the file checked and streamed to Cloud Storage as it arrives
(`Intake`: counted, hashed, never held whole), and the errors that refuse it at once (413,
415). The service's side of the upload (`receive`, `upload`) is in upload.py."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

from valorize.domain.errors import DomainError
from valorize.domain.imports import Import
from valorize.domain.statements import CsvMapping, sniff_format
from valorize.domain.statements.api import SNIFF_BYTES, Format
from valorize.service.ports.imports import StatementFiles, StatementWriter

log = logging.getLogger(__name__)

MAX_STATEMENT_BYTES: Final = 10 * 1024 * 1024

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


def _is_binary(head: bytes) -> str | None:
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            return what
    if b"\x00" in head[:8192] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "a binary file"
    return None


def _content_type(fmt: str | None) -> str:
    return {"ofx": "application/x-ofx", "csv": "text/csv"}.get(fmt or "", "text/plain")
