"""Every document's mapping to and from the domain (no I/O): one place for the stored shape
of each aggregate, shared by the adapter modules (the layout is in __init__.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from valorize.adapters.firestore.rule_documents import (
    action_doc,
    action_of,
    condition_doc,
    condition_of,
    schedule_doc,
    schedule_of,
)
from valorize.domain import rules as r
from valorize.domain import search
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage, scheduled_next
from valorize.domain.budget import Budget
from valorize.domain.model import (
    Account,
    AccountDeletion,
    AccountType,
    ApiToken,
    Category,
    CategoryType,
    Color,
    DeletionState,
    Origin,
    Split,
    Transaction,
    User,
)
from valorize.domain.recurrence import Recurrence
from valorize.service.ports.idempotency import IdempotencyRecord


def user_doc(u: User) -> dict[str, Any]:
    return {
        "email": u.email,
        "name": u.name,
        "preferred_currency": u.preferred_currency,
        "locale": u.locale,
        "created_at": u.created_at,
    }


def user_of(doc_id: str, d: dict[str, Any]) -> User:
    return User(
        id=doc_id,
        email=d["email"],
        name=d["name"],
        preferred_currency=d["preferred_currency"],
        locale=d["locale"],
        created_at=d["created_at"],
    )


def account_doc(a: Account) -> dict[str, Any]:
    return {
        "name": a.name,
        "type": a.type.value,
        "currency": a.currency,
        "opening_balance": a.opening_balance,
        "balance": a.balance,
        "bank_code": a.bank_code,
        "bank_name": a.bank_name,
        "number": a.number,
        "transaction_count": a.transaction_count,
        "low_balance_threshold": a.low_balance_threshold,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def account_of(doc_id: str, d: dict[str, Any]) -> Account:
    return Account(
        id=doc_id,
        name=d["name"],
        type=AccountType(d["type"]),
        currency=d["currency"],
        opening_balance=d["opening_balance"],
        balance=d["balance"],
        bank_code=d.get("bank_code"),
        bank_name=d.get("bank_name"),
        number=d.get("number"),
        transaction_count=d.get("transaction_count", 0),
        low_balance_threshold=d.get("low_balance_threshold"),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def deletion_doc(d: AccountDeletion) -> dict[str, Any]:
    return {
        "state": d.state.value,
        "total": d.total,
        "deleted": d.deleted,
        "started_at": d.started_at,
        "updated_at": d.updated_at,
        "finished_at": d.finished_at,
        "step": d.step,
    }


def deletion_of(doc_id: str, d: dict[str, Any]) -> AccountDeletion:
    return AccountDeletion(
        account_id=doc_id,
        state=DeletionState(d["state"]),
        total=d.get("total", 0),
        deleted=d.get("deleted", 0),
        started_at=d["started_at"],
        updated_at=d["updated_at"],
        finished_at=d.get("finished_at"),
        step=d.get("step", 0),
    )


def category_doc(c: Category) -> dict[str, Any]:
    return {
        "name": c.name,
        "name_key": c.name_key,
        "color": c.color.value,
        "type": c.type.value,
        "description": c.description,
        "parent_id": c.parent_id,
        "is_default": c.is_default,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def category_of(doc_id: str, d: dict[str, Any]) -> Category:
    return Category(
        id=doc_id,
        name=d["name"],
        color=Color(d["color"]),
        type=CategoryType(d["type"]),
        description=d.get("description"),
        parent_id=d.get("parent_id"),
        is_default=d.get("is_default", False),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def name_doc(c: Category) -> dict[str, Any]:
    return {"name_key": c.name_key, "category_id": c.id}


# Derived for the list's indexes (adapters/firestore/ledger.py list_transactions), written by
# every write of a transaction and never read back.
MAGNITUDE = "magnitude"  # |amount|: min_amount/max_amount
SEARCH_TOKENS = "search_tokens"  # domain/search.py tokens: q, with or without a category
# What a read of a transaction asks for (a query's projection, a get's field mask): all but
# the derived fields. The tokens are most of a stored transaction (about 250 strings for a
# 60-character bank description), and decoding them cost ten times the rest of the document
# in the client, on every page.
TXN_FIELDS = (
    "account_id",
    "amount",
    "currency",
    "type",
    "date",
    "sort_key",
    "description",
    "category_id",
    "category_ids",
    "notes",
    "splits",
    "origin",
    "fitid",
    "import_id",
    "transfer_id",
    "counterpart_id",
    "counterpart_account_id",
    "created_at",
    "updated_at",
)
# What changes with a transaction's categories alone (LedgerBatch.recategorize).
CATEGORY_FIELDS = ("category_id", "category_ids", "splits", SEARCH_TOKENS)


def txn_doc(t: Transaction) -> dict[str, Any]:
    category_ids = t.category_ids
    return {
        "account_id": t.account_id,
        "amount": t.amount,
        MAGNITUDE: abs(t.amount),
        "currency": t.currency,
        "type": t.type.value,
        "date": t.date.isoformat(),
        "sort_key": t.sort_key,
        "description": t.description,
        "category_id": t.category_id,
        "category_ids": category_ids,
        SEARCH_TOKENS: search.tokens(t.description, category_ids),
        "notes": t.notes,
        "splits": [
            {"category_id": s.category_id, "amount": s.amount, "description": s.description}
            for s in t.splits
        ],
        "origin": t.origin.value,
        "fitid": t.fitid,
        "import_id": t.import_id,
        "transfer_id": t.transfer_id,
        "counterpart_id": t.counterpart_id,
        "counterpart_account_id": t.counterpart_account_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def txn_of(doc_id: str, d: dict[str, Any]) -> Transaction:
    return Transaction(
        id=doc_id,
        account_id=d["account_id"],
        amount=d["amount"],
        currency=d["currency"],
        date=date.fromisoformat(d["date"]),
        description=d["description"],
        category_id=d.get("category_id"),
        notes=d.get("notes"),
        splits=tuple(
            Split(s.get("category_id"), s["amount"], s.get("description"))
            for s in d.get("splits") or []
        ),
        origin=Origin(d.get("origin", "manual")),
        fitid=d.get("fitid"),
        import_id=d.get("import_id"),
        transfer_id=d.get("transfer_id"),
        counterpart_id=d.get("counterpart_id"),
        counterpart_account_id=d.get("counterpart_account_id"),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def budget_doc(b: Budget) -> dict[str, Any]:
    return {
        "category_id": b.category_id,
        "name": b.name,
        "currency": b.currency,
        "allocations": dict(b.allocations),
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    }


def budget_of(doc_id: str, d: dict[str, Any]) -> Budget:
    return Budget(
        id=doc_id,
        category_id=d["category_id"],
        name=d["name"],
        currency=d["currency"],
        allocations=dict(d.get("allocations") or {}),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def idem_doc(r: IdempotencyRecord) -> dict[str, Any]:
    return {
        "fingerprint": r.fingerprint,
        "status": r.status,
        "body": r.body,
        "expires_at": r.expires_at,
    }


def token_doc(t: ApiToken, secret_hash: str) -> dict[str, Any]:
    return {
        "user_id": t.user_id,
        "name": t.name,
        "secret_hash": secret_hash,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
    }


def token_of(doc_id: str, d: dict[str, Any]) -> ApiToken:
    return ApiToken(
        id=doc_id,
        user_id=d["user_id"],
        name=d["name"],
        created_at=d["created_at"],
        expires_at=d.get("expires_at"),
        last_used_at=d.get("last_used_at"),
    )


# --- rules, recurrences, rules jobs ---------------------------------------------------------


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def rule_doc(rule: r.Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "rank": rule.rank,
        "enabled": rule.enabled,
        "match": rule.match.value,
        "stop": rule.stop,
        "conditions": [condition_doc(c) for c in rule.conditions],
        "actions": [action_doc(a) for a in rule.actions],
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def rule_of(doc_id: str, d: dict[str, Any]) -> r.Rule:
    return r.Rule(
        id=doc_id,
        name=d["name"],
        # Derived from the order of all of them (domain.rules.numbered).
        position=0,
        rank=d["rank"],
        conditions=tuple(condition_of(c) for c in d["conditions"]),
        actions=tuple(action_of(a) for a in d["actions"]),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        enabled=bool(d.get("enabled", True)),
        match=r.Match(d.get("match", "all")),
        stop=bool(d.get("stop", False)),
    )


def recurrence_doc(rec: Recurrence) -> dict[str, Any]:
    return {
        "account_id": rec.account_id,
        "amount": rec.amount,
        "currency": rec.currency,
        "description": rec.description,
        "category_id": rec.category_id,
        "notes": rec.notes,
        "schedule": schedule_doc(rec.schedule),
        "start": rec.start.isoformat(),
        "end": _iso(rec.end),
        "materialized_through": _iso(rec.materialized_through),
        # Denormalised for the scheduler: derived from the fields above on every write.
        "next_due": _iso(scheduled_next(rec)),
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


def recurrence_of(doc_id: str, d: dict[str, Any]) -> Recurrence:
    start = _day(d["start"])
    assert start is not None
    return Recurrence(
        id=doc_id,
        account_id=d["account_id"],
        amount=int(d["amount"]),
        currency=d["currency"],
        description=d["description"],
        schedule=schedule_of(d["schedule"]),
        start=start,
        end=_day(d.get("end")),
        category_id=d.get("category_id"),
        notes=d.get("notes"),
        materialized_through=_day(d.get("materialized_through")),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def job_doc(job: RuleJob) -> dict[str, Any]:
    return {
        "params": job.params,
        "status": job.status.value,
        "processed": job.processed,
        "changed": job.changed,
        "pages": job.pages,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


def job_of(doc_id: str, d: dict[str, Any]) -> RuleJob:
    return RuleJob(
        id=doc_id,
        params=dict(d.get("params") or {}),
        status=JobStatus(d.get("status", "queued")),
        processed=int(d.get("processed", 0)),
        changed=int(d.get("changed", 0)),
        pages=int(d.get("pages", 0)),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        finished_at=d.get("finished_at"),
    )


def page_doc(page: RuleJobPage) -> dict[str, Any]:
    return {
        "index": page.index,
        "cursor": page.cursor,
        "next_cursor": page.next_cursor,
        "processed": page.processed,
        "changed": page.changed,
        "done": page.done,
    }


def page_of(d: dict[str, Any]) -> RuleJobPage:
    return RuleJobPage(
        index=int(d["index"]),
        cursor=d.get("cursor"),
        next_cursor=d.get("next_cursor"),
        processed=int(d.get("processed", 0)),
        changed=int(d.get("changed", 0)),
        done=bool(d.get("done", False)),
    )
