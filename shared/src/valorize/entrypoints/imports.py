"""The imports API's edge: response shapes and the multipart upload parser."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any, Final, Literal

import flask
from pydantic import Field, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from valorize.domain import ids
from valorize.domain.errors import FieldError, ValidationFailed
from valorize.domain.imports import (
    Classification,
    Import,
    ImportStatus,
    Resolution,
    StagedRow,
    StatementSummary,
)
from valorize.domain.money import is_currency
from valorize.domain.statements import CsvMapping
from valorize.entrypoints.schemas import Out
from valorize.service.imports import PayloadTooLarge, UnsupportedMedia, Upload

# Room for the multipart envelope and the small text fields around the file.
FORM_OVERHEAD: Final = 256 * 1024
TEXT_FIELD_MAX: Final = 64 * 1024
# An oversized body is read (and dropped) up to this much before answering 413, so the
# client gets the answer instead of a reset connection; beyond it, the connection is dropped.
DRAIN_MAX: Final = 64 * 1024 * 1024


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

    @classmethod
    def of(cls, s: StatementSummary) -> ImportStatementOut:
        return cls(
            index=s.index,
            kind=s.kind,
            currency=s.currency,
            account_id=s.account_id,
            account_created=s.account_created,
            lines=s.lines,
            errors=s.errors,
            bank_id=s.bank_id,
            account_number=s.account_number,
            start=s.start,
            end=s.end,
            ledger_balance=s.ledger_balance,
            preset=s.preset,
        )


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
        return cls(
            id=r.id,
            status=r.status,
            file_name=r.file_name,
            format=r.format,
            size=r.size,
            preset=r.preset,
            account_id=r.account_id,
            account_ids=list(r.account_ids),
            counts=ImportCountsOut(**r.counts.as_dict()),
            progress=ImportProgressOut(processed=r.processed, total=r.total),
            reason=r.reason,
            statements=[ImportStatementOut.of(s) for s in r.statements],
            committed=r.committed,
            reverted=r.reverted,
            created_at=r.created_at,
            updated_at=r.updated_at,
            processed_at=r.processed_at,
            committed_at=r.committed_at,
            reverted_at=r.reverted_at,
        )


class ImportAcceptedOut(Out):
    id: str
    status: ImportStatus


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
        return cls(
            id=r.id,
            statement=r.statement,
            line=r.line_no,
            account_id=r.account_id,
            classification=r.classification,
            include=r.include,
            resolution=r.resolution,
            fitid=r.fitid,
            date=r.date,
            amount=r.amount,
            currency=r.currency,
            description=r.description,
            memo=r.memo,
            name=r.name,
            type=r.raw_type,
            reason=r.reason,
            matched=None
            if m is None
            else MatchedOut(
                transaction_id=m.id,
                date=m.date,
                amount=m.amount,
                description=m.description,
                fitid=m.fitid,
            ),
            committed=r.committed,
            transaction_id=r.transaction_id,
        )


# --- multipart --------------------------------------------------------------------------------

UPLOAD_FIELDS: Final = {"file", "account_id", "format", "mapping", "preset", "currency"}


def _drain(request: flask.Request) -> None:
    stream = request.stream
    left = DRAIN_MAX
    while left > 0:
        chunk = stream.read(min(left, 1024 * 1024))
        if not chunk:
            return
        left -= len(chunk)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file exceeds {max_bytes // (1024 * 1024)} MiB; export a shorter period from your bank"
    )


def parse_upload(request: flask.Request, max_bytes: int) -> Upload:
    """The multipart form as an Upload. The file part goes to memory (at most `max_bytes`),
    never to the instance's disk."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMedia(
            "send the statement as multipart/form-data with the file in a `file` field"
        )
    limit = max_bytes + FORM_OVERHEAD
    if request.content_length is not None and request.content_length > limit:
        _drain(request)
        raise _too_large(max_bytes)

    def to_memory(*_args: Any, **_kwargs: Any) -> io.BytesIO:
        return io.BytesIO()

    parser = FormDataParser(
        stream_factory=to_memory,
        max_form_memory_size=TEXT_FIELD_MAX,
        max_content_length=limit,
        silent=False,
        max_form_parts=20,
    )
    try:
        _, form, files = parser.parse_from_environ(request.environ)
    except RequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    except ValueError:
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
    data = upload.stream.read()
    if len(data) > max_bytes:
        raise _too_large(max_bytes)

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
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ValidationFailed.on("Idempotency-Key", "must be 1 to 255 characters")
    format_: Literal["ofx", "csv"] | None = fmt  # type: ignore[assignment]
    return Upload(
        file_name=upload.filename or "statement",
        data=data,
        content_type=upload.mimetype or None,
        format=format_,
        mapping=mapping,
        preset=preset,
        account_id=account_id,
        currency=currency,
        idempotency_key=key,
    )
