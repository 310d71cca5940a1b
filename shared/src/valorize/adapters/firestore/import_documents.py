"""Import documents on Cloud Firestore: the import and its staged rows, to and from their
documents (layout: adapters/firestore/imports.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from valorize.adapters.firestore.documents import txn_doc, txn_of
from valorize.domain.imports import (
    Classification,
    Counts,
    ExistingTransaction,
    Import,
    ImportStatus,
    Resolution,
    StagedRow,
    StatementSummary,
)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _undate(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def import_doc(r: Import) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "file_name": r.file_name,
        "object_name": r.object_name,
        "size": r.size,
        "sha256": r.sha256,
        "format": r.format,
        "preset": r.preset,
        "mapping": r.mapping,
        "currency": r.currency,
        "account_id": r.account_id,
        "account_ids": list(r.account_ids),
        "counts": r.counts.as_dict(),
        "progress": {"processed": r.processed, "total": r.total},
        "reason": r.reason,
        "statements": [
            {
                "index": s.index,
                "kind": s.kind,
                "currency": s.currency,
                "account_id": s.account_id,
                "account_created": s.account_created,
                "lines": s.lines,
                "errors": s.errors,
                "bank_id": s.bank_id,
                "account_number": s.account_number,
                "start": _day(s.start),
                "end": _day(s.end),
                "ledger_balance": s.ledger_balance,
                "preset": s.preset,
                "credits": s.credits,
                "debits": s.debits,
            }
            for s in r.statements
        ],
        "committed": r.committed,
        "reverted": r.reverted,
        "cursor": r.cursor,
        "attempts": r.attempts,
        "requests": r.requests,
        "first_date": _day(r.first_date),
        "last_date": _day(r.last_date),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "processed_at": r.processed_at,
        "committed_at": r.committed_at,
        "reverted_at": r.reverted_at,
    }


def import_of(doc_id: str, d: dict[str, Any]) -> Import:
    progress = d.get("progress") or {}
    return Import(
        id=doc_id,
        status=ImportStatus(d["status"]),
        file_name=d["file_name"],
        object_name=d["object_name"],
        size=d["size"],
        sha256=d["sha256"],
        format=d.get("format"),
        preset=d.get("preset"),
        mapping=d.get("mapping"),
        currency=d.get("currency"),
        account_id=d.get("account_id"),
        account_ids=tuple(d.get("account_ids") or ()),
        counts=Counts(**(d.get("counts") or {})),
        processed=progress.get("processed", 0),
        total=progress.get("total", 0),
        reason=d.get("reason"),
        statements=tuple(
            StatementSummary(
                index=s["index"],
                kind=s["kind"],
                currency=s["currency"],
                account_id=s["account_id"],
                account_created=s["account_created"],
                lines=s["lines"],
                errors=s["errors"],
                bank_id=s.get("bank_id"),
                account_number=s.get("account_number"),
                start=_undate(s.get("start")),
                end=_undate(s.get("end")),
                ledger_balance=s.get("ledger_balance"),
                preset=s.get("preset"),
                credits=s.get("credits"),
                debits=s.get("debits"),
            )
            for s in d.get("statements") or ()
        ),
        committed=d.get("committed", 0),
        reverted=d.get("reverted", 0),
        cursor=d.get("cursor"),
        attempts=d.get("attempts", 0),
        requests=d.get("requests", 0),
        first_date=_undate(d.get("first_date")),
        last_date=_undate(d.get("last_date")),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        processed_at=d.get("processed_at"),
        committed_at=d.get("committed_at"),
        reverted_at=d.get("reverted_at"),
    )


def row_doc(r: StagedRow) -> dict[str, Any]:
    """A row's document; empty optional fields are left out (half the encoding work, and a
    staged import can have tens of thousands of rows)."""
    doc = full_row_doc(r)
    return {k: v for k, v in doc.items() if v is not None}


def full_row_doc(r: StagedRow) -> dict[str, Any]:
    m = r.matched
    return {
        "statement": r.statement,
        "ordinal": r.ordinal,
        "line_no": r.line_no,
        "classification": r.classification.value,
        "include": r.include,
        "pending": r.pending,
        "account_id": r.account_id,
        "fitid": r.fitid,
        "date": _day(r.date),
        "amount": r.amount,
        "currency": r.currency,
        "description": r.description,
        "memo": r.memo,
        "name": r.name,
        "raw_type": r.raw_type,
        "reason": r.reason,
        "matched": None
        if m is None
        else {
            "transaction_id": m.id,
            "date": m.date.isoformat(),
            "amount": m.amount,
            "description": m.description,
            "fitid": m.fitid,
        },
        "resolution": r.resolution.value if r.resolution else None,
        "committed": r.committed,
        "transaction_id": r.transaction_id,
        "reverted_as": None if r.reverted_as is None else txn_doc(r.reverted_as),
    }


def row_of(doc_id: str, d: dict[str, Any]) -> StagedRow:
    m = d.get("matched")
    return StagedRow(
        id=doc_id,
        statement=d["statement"],
        ordinal=d["ordinal"],
        line_no=d["line_no"],
        classification=Classification(d["classification"]),
        include=d["include"],
        account_id=d.get("account_id"),
        fitid=d.get("fitid"),
        date=_undate(d.get("date")),
        amount=d.get("amount"),
        currency=d.get("currency"),
        description=d.get("description"),
        memo=d.get("memo"),
        name=d.get("name"),
        raw_type=d.get("raw_type"),
        reason=d.get("reason"),
        matched=None
        if not m
        else ExistingTransaction(
            id=m["transaction_id"],
            date=date.fromisoformat(m["date"]),
            amount=m["amount"],
            fitid=m.get("fitid"),
            description=m.get("description") or "",
        ),
        resolution=Resolution(d["resolution"]) if d.get("resolution") else None,
        committed=d.get("committed", False),
        transaction_id=d.get("transaction_id"),
        reverted_as=txn_of(d["transaction_id"], d["reverted_as"]) if d.get("reverted_as") else None,
    )
