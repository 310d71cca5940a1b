"""The imports API's edge: response shapes and the multipart upload parser."""

from __future__ import annotations

import datetime as dt
from typing import IO, Final, Literal, cast

import flask
from pydantic import BaseModel, Field, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.sansio.multipart import File

from valorize.domain import ids
from valorize.domain.errors import DomainError, FieldError, ValidationFailed
from valorize.domain.imports import (
    Classification,
    Import,
    ImportStatus,
    Resolution,
    StagedRow,
)
from valorize.domain.money import is_currency
from valorize.domain.statements import CsvMapping
from valorize.entrypoints.schemas import Out
from valorize.service.imports import Intake, UnsupportedMedia, Upload, too_large


class ImportCountsOut(Out):
    new: int
    duplicate: int
    conflict: int
    error: int


class ImportProgressOut(Out):
    processed: int = Field(description="Lines staged (processing) so far")
    total: int = Field(description="Lines in the file (known after the first pass)")


class ImportStatementOut(Out):
    index: int
    kind: str = Field(description="bank | credit_card")
    currency: str
    account_id: str
    account_created: bool = Field(description="The import created this account")
    lines: int
    errors: int
    bank_id: str | None
    account_number: str | None
    start: dt.date | None = Field(description="Earliest transaction date")
    end: dt.date | None = Field(description="Latest transaction date")
    ledger_balance: int | None = Field(description="The bank's closing balance (minor units)")
    preset: str | None = Field(description="CSV: the preset used (custom = your mapping)")


class ImportOut(Out):
    id: str
    status: ImportStatus
    file_name: str
    format: str | None = Field(description="ofx | csv (null: not recognised)")
    size: int = Field(description="Bytes")
    preset: str | None
    account_id: str | None = Field(description="The account chosen at upload, if any")
    account_ids: list[str] = Field(description="Every account the statement's lines go to")
    counts: ImportCountsOut
    progress: ImportProgressOut
    reason: str | None = Field(description="Why it failed, and what to do")
    statements: list[ImportStatementOut]
    committed: int = Field(description="Transactions created by the commit")
    reverted: int = Field(description="Transactions removed by the revert")
    created_at: dt.datetime
    updated_at: dt.datetime
    processed_at: dt.datetime | None
    committed_at: dt.datetime | None
    reverted_at: dt.datetime | None

    @classmethod
    def of(cls, r: Import) -> ImportOut:
        return cls.drawn(
            r,
            account_ids=list(r.account_ids),
            counts=r.counts.as_dict(),
            progress=ImportProgressOut(processed=r.processed, total=r.total),
        )


class ImportAcceptedOut(Out):
    id: str
    status: ImportStatus

    @classmethod
    def of(cls, record: Import) -> ImportAcceptedOut:
        # Uploaded, whatever the import has become since (a replay is the first answer: GET
        # the import for its status).
        return cls(id=record.id, status=ImportStatus.UPLOADED)


class UploadForm(BaseModel):
    """The upload's multipart/form-data parts (documented here; `parse_upload` reads them as
    they stream in). Every part but the file may be left out."""

    file: bytes = Field(
        description="The statement: OFX (1.x SGML or 2.x XML) or CSV, at most 10 MiB"
    )
    account_id: str | None = Field(
        default=None,
        description="One of your accounts; else detected from the statement (bank id + "
        "account number) or created",
    )
    format: Literal["ofx", "csv"] | None = None
    mapping: str | None = Field(
        default=None,
        description="CSV only, JSON: {date, description (one column or a list), amount | "
        "debit+credit, fitid?, date_format?, decimal_separator?, thousands_separator?, sign?: "
        "signed | debit_positive, skip_rows?, has_header?, delimiter?, encoding?, stop_at?}; "
        "columns by header name or 0-based position",
    )
    preset: str | None = Field(
        default=None,
        description="CSV layout of a bank: bradesco, inter, nubank_account, nubank_card, "
        "generic (else recognised from the header row)",
    )
    currency: str | None = Field(
        default=None,
        description="CSV amounts' currency (default: the chosen account's, else your "
        "preferred currency)",
    )


class MatchedOut(Out):
    transaction_id: str
    date: dt.date
    amount: int
    description: str
    fitid: str | None


class ImportRowOut(Out):
    id: str = Field(description="<statement>-<ordinal>: stable, in file order")
    statement: int
    line: int = Field(description="Line of the file where the record starts")
    account_id: str | None
    classification: Classification
    include: bool = Field(description="Becomes a transaction at commit")
    resolution: Resolution | None
    fitid: str | None
    date: dt.date | None
    amount: int | None = Field(description="Signed minor units; null for an error row")
    currency: str | None
    description: str | None
    memo: str | None
    name: str | None
    type: str | None = Field(description="OFX TRNTYPE as written (the sign decides)")
    reason: str | None = Field(
        description="Error rows: why the line could not be read; duplicates and conflicts: "
        "what matched"
    )
    matched: MatchedOut | None = Field(description="The existing transaction it matches")
    committed: bool
    transaction_id: str | None

    @classmethod
    def of(cls, r: StagedRow) -> ImportRowOut:
        m = r.matched
        matched = None if m is None else MatchedOut.drawn(m, transaction_id=m.id)
        return cls.drawn(r, line=r.line_no, type=r.raw_type, matched=matched)


# --- multipart ----------------------------------------------------------------------------------

UPLOAD_FIELDS: Final = frozenset(UploadForm.model_fields)
MAX_PARTS: Final = len(UPLOAD_FIELDS) + 2
TEXT_FIELD_MAX: Final = 64 * 1024
# werkzeug applies its text-field cap (max_form_memory_size) to its parser's buffer too, and
# that buffer holds one read of the body plus a held-back tail up to a boundary's length: with
# reads as large as the cap, any file over ~140 KB met it and was refused as too large. Reads
# stay well under the cap.
READ_SIZE: Final = 16 * 1024
# All but the file is bounded by the parser's limits (the preamble, each part's headers and
# text, the epilogue: TEXT_FIELD_MAX each), so a longer body cannot carry a file within the
# limit and is refused before it is read.
FORM_OVERHEAD: Final = (2 * MAX_PARTS + 3) * TEXT_FIELD_MAX
# A refused body is read (and dropped) up to this much before answering, so the client gets
# the answer instead of a reset connection; beyond it, the connection is dropped.
DRAIN_MAX: Final = 64 * 1024 * 1024


def _drain(request: flask.Request) -> None:
    stream = request.stream
    left = DRAIN_MAX
    while left > 0:
        chunk = stream.read(min(left, 1024 * 1024))
        if not chunk:
            return
        left -= len(chunk)


class _IntoIntake:
    """The file part's container: each chunk goes on to the intake as it is parsed."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def write(self, data: bytes) -> int:
        self.intake.write(data)
        return len(data)

    def seek(self, *_args: object) -> int:
        return 0  # the parser rewinds a finished part; nothing here to rewind


class _StatementParser(MultiPartParser):
    """werkzeug's multipart parser with the one `file` part streamed into an Intake."""

    def __init__(self, intake: Intake) -> None:
        super().__init__(
            max_form_memory_size=TEXT_FIELD_MAX, buffer_size=READ_SIZE, max_form_parts=MAX_PARTS
        )
        self.intake = intake
        self.has_file = False

    def start_file_streaming(self, event: File, total_content_length: int | None) -> IO[bytes]:
        if event.name != "file":
            raise ValidationFailed(
                f"unknown fields: {event.name}", [FieldError(event.name, "unknown field")]
            )
        if self.has_file:
            raise ValidationFailed.on("file", "one file per upload")
        self.has_file = True
        return cast(IO[bytes], _IntoIntake(self.intake))


def parse_upload(request: flask.Request, intake: Intake) -> Upload:
    """The multipart form as an Upload, its file streamed into `intake` as it arrives (never
    whole in memory, never on the instance's disk)."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMedia(
            "send the statement as multipart/form-data with the file in a `file` field"
        )
    limit = intake.max_bytes + FORM_OVERHEAD
    if request.content_length is not None and request.content_length > limit:
        _drain(request)
        raise too_large(intake.max_bytes)
    boundary = request.mimetype_params.get("boundary", "")
    try:
        if not boundary or not boundary.isascii():
            raise ValueError("missing boundary")
        form, files = _StatementParser(intake).parse(
            request.stream, boundary.encode("ascii"), request.content_length
        )
    except DomainError:
        _drain(request)
        raise
    except RequestEntityTooLarge:
        _drain(request)
        raise ValidationFailed.on(
            "body", f"at most {MAX_PARTS} parts, text fields of at most 64 KiB"
        ) from None
    except ValueError:
        _drain(request)
        raise ValidationFailed.on("file", "the multipart body could not be read") from None
    unknown = sorted((set(form) | set(files)) - UPLOAD_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"unknown fields: {', '.join(unknown)}",
            [FieldError(name, "unknown field") for name in unknown],
        )
    upload = files.get("file")
    if upload is None:
        raise ValidationFailed.on("file", "required: the statement file")

    def text(name: str) -> str | None:
        value = form.get(name)
        return value.strip() or None if isinstance(value, str) else None

    fmt = text("format")
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in ("ofx", "csv"):
            raise ValidationFailed.on("format", "ofx or csv (or leave it out to detect it)")
    mapping: CsvMapping | None = None
    raw_mapping = text("mapping")
    if raw_mapping is not None:
        try:
            mapping = CsvMapping.model_validate_json(raw_mapping)
        except ValidationError as error:
            issues = error.errors(include_url=False, include_context=False, include_input=False)
            if any(i["type"] == "json_invalid" for i in issues):
                raise ValidationFailed.on("mapping", "not valid JSON") from None
            fields = [
                FieldError(".".join(["mapping", *map(str, i["loc"])]).rstrip("."), i["msg"])
                for i in issues
            ]
            raise ValidationFailed(
                "invalid mapping: " + ", ".join(f.field for f in fields), fields
            ) from None
    preset = text("preset")
    if mapping is not None and preset is not None:
        raise ValidationFailed.on("preset", "give a mapping or a preset, not both")
    currency = text("currency")
    if currency is not None and not is_currency(currency):
        raise ValidationFailed.on("currency", "an ISO-4217 code such as BRL, USD or EUR")
    account_id = text("account_id")
    if account_id is not None and not ids.ENTITY.matches(account_id):
        raise ValidationFailed.on("account_id", "no such account")
    format_: Literal["ofx", "csv"] | None = fmt  # type: ignore[assignment]
    return Upload(
        file_name=upload.filename or "statement",
        content_type=upload.mimetype or None,
        format=format_,
        mapping=mapping,
        preset=preset,
        account_id=account_id,
        currency=currency,
    )
