"""Imports: one uploaded statement's lifecycle, its staged rows, and how every statement line is
classified against the ledger. Pure: no I/O.

Lifecycle (`ImportStatus`)::

    uploaded -> processing -> ready -> committing -> committed -> reverting -> reverted
                     \\-> failed (with a reason a person can act on)

`committing` and `reverting` are the in-between states of the two long writes (they may run
as Cloud Tasks); a retried commit or revert resumes from where the last one stopped.

Classification of a line, per account (the account the statement resolved to):

* with a FITID: an existing transaction of the account with the same FITID is a
  `duplicate` when amount and date are equal, else a `conflict` (the user decides). A FITID
  repeated inside the same file (within `SEEN_WINDOW` lines) is treated the same way
  against its first occurrence.
* without a FITID: a `duplicate` when the account already has a transaction with the same
  amount, dated within ±`FUZZY_DAYS` days, with a similar description (`similar`); each
  existing transaction can be the duplicate of one line only, so two identical lines against
  one existing transaction give one duplicate and one new. Identical lines *inside* a file
  are never duplicates of each other (two coffees on one day are two coffees).
* a record the parser could not read is an `error` (line number and why).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from valorize.domain.model import Account, AccountType, Transaction
from valorize.domain.statements.events import StatementInfo, StatementKind, StatementLine
from valorize.domain.text import fold

# A line without FITID is a duplicate of an existing transaction at most this many days away.
FUZZY_DAYS: Final = 3
# Share of the shorter description's words the other one must have for "similar".
SIMILARITY: Final = 0.6
# A FITID repeated inside one file is caught within this many lines (at least; up to twice
# as many): banks that repeat a line repeat it nearby, and memory must not grow with the file.
SEEN_WINDOW: Final = 10_000


class ImportStatus(StrEnum):
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    READY = "ready"
    COMMITTING = "committing"
    COMMITTED = "committed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    FAILED = "failed"


class Classification(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    ERROR = "error"


class Resolution(StrEnum):
    KEEP_EXISTING = "keep_existing"
    IMPORT_ANYWAY = "import_anyway"


# --- deterministic ids ------------------------------------------------------------------------


def row_id(statement: int, ordinal: int) -> str:
    """A staged row's id: the statement's index and the record's position in the file
    (`StatementLine.ordinal`), zero-padded so ids sort in file order. The physical line number
    is not unique (some banks send a whole OFX on one line), the ordinal is."""
    return f"{statement:03d}-{ordinal:07d}"


def _hex(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def transaction_id(import_id: str, row: str) -> str:
    """The id of the transaction a committed row becomes. Hexadecimal like every other
    transaction id (list cursors are `<date>#<hex id>`); the same row always gives the same id,
    so a retried commit can never write it twice."""
    return _hex("import", import_id, row)


def created_account_id(import_id: str, statement: int) -> str:
    """The id of an account an import creates for a statement it could not match: a re-run of
    the same import finds (and reuses) the account it created before it crashed."""
    return _hex("import-account", import_id, str(statement))


def import_id_for_key(user_id: str, key: str) -> str:
    """Upload with an Idempotency-Key: the import's id is derived from the key, so the
    import document's create() is the claim and a retry finds the first upload."""
    return "k" + _hex("import-key", user_id, key)[:31]


# --- descriptions -----------------------------------------------------------------------------

_WORD = re.compile(r"[0-9a-z]+")
_STOP_WORDS: Final = frozenset(
    {"a", "o", "e", "de", "da", "do", "das", "dos", "em", "no", "na", "nos", "nas", "com"}
    | {"por", "para", "pelo", "pela", "the", "of", "to", "and", "at", "in", "on"}
)


def description_words(text: str) -> frozenset[str]:
    """The words that identify a description: case and accents folded, punctuation dropped,
    and numbers (document numbers, dates, instalments) and tiny words ignored."""
    return frozenset(
        w for w in _WORD.findall(fold(text)) if not w.isdigit() and w not in _STOP_WORDS
    )


def similar(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two descriptions (as `description_words`) name the same thing: at least `SIMILARITY`
    of the shorter one's words are in the other, where a word also matches a longer word it
    starts, if the shorter of the two has 3 letters or more (banks cut names: "IFOOD
    *RESTAURANTE SA" ~ "iFood Restaurante Sabor"). Two empty descriptions are similar; an
    empty and a non-empty one are not. Symmetric: with as many words on both sides, either
    side may be the one whose words are found."""
    if len(a) == len(b):
        return _covered(a, b) or _covered(b, a)
    return _covered(a, b) if len(a) < len(b) else _covered(b, a)


def _covered(small: frozenset[str], large: frozenset[str]) -> bool:
    if not small:
        return not large
    hits = sum(1 for w in small if w in large or any(_same_word(w, x) for x in large))
    return hits >= SIMILARITY * len(small)


def _same_word(x: str, y: str) -> bool:
    short, long = (x, y) if len(x) <= len(y) else (y, x)
    return short == long or (len(short) >= 3 and long.startswith(short))


# --- classification ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExistingTransaction:
    """What classification needs of a transaction already in the account."""

    id: str
    date: date
    amount: int
    fitid: str | None
    description: str
    # The description as the statement wrote it, when the transaction came from an import
    # (rules may have renamed it since); compared as well.
    statement_description: str | None = None
    import_id: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    classification: Classification
    matched: ExistingTransaction | None = None
    # Why, for the reviewer ("same FITID, different amount", "repeats an earlier line").
    note: str | None = None


_DAY_BITS: Final = 22  # date ordinals (year 9999 = 3.65M) fit in 22 bits


def _pack(amount: int, day: date) -> int:
    return (amount << _DAY_BITS) | day.toordinal()


class Classifier:
    """Classifies the lines of one account, in file order.

    Holds the account's transactions in the statement's date window (loaded once, with one
    query) and, compactly and bounded, the FITIDs recently seen in this file (two ints per
    line of the last `SEEN_WINDOW`), nothing of the lines themselves."""

    def __init__(self, existing: Iterable[ExistingTransaction] = ()) -> None:
        self._by_fitid: dict[str, list[ExistingTransaction]] = defaultdict(list)
        self._by_amount: dict[int, list[ExistingTransaction]] = defaultdict(list)
        self._words: dict[str, tuple[frozenset[str], ...]] = {}
        self._used: set[str] = set()
        # hash(fitid) -> packed (amount, date) of its first line, for the FITIDs of the last
        # SEEN_WINDOW to 2 x SEEN_WINDOW lines (two generations: memory stays bounded).
        self._seen: dict[int, int] = {}
        self._seen_before: dict[int, int] = {}
        for txn in existing:
            self.add_existing(txn)

    def add_existing(self, txn: ExistingTransaction) -> None:
        if txn.fitid:
            self._by_fitid[txn.fitid].append(txn)
        self._by_amount[txn.amount].append(txn)

    def _words_of(self, txn: ExistingTransaction) -> tuple[frozenset[str], ...]:
        words = self._words.get(txn.id)
        if words is None:
            forms = [description_words(txn.description)]
            if txn.statement_description and txn.statement_description != txn.description:
                forms.append(description_words(txn.statement_description))
            words = self._words[txn.id] = tuple(forms)
        return words

    def classify(self, line: StatementLine) -> Verdict:
        if line.fitid:
            return self._by_fitid_verdict(line, line.fitid)
        return self._fuzzy_verdict(line)

    def _by_fitid_verdict(self, line: StatementLine, fitid: str) -> Verdict:
        candidates = self._by_fitid.get(fitid)
        if candidates:
            for txn in candidates:
                if txn.amount == line.amount and txn.date == line.date:
                    self._used.add(txn.id)
                    return Verdict(Classification.DUPLICATE, txn, "same FITID")
            txn = candidates[0]
            self._used.add(txn.id)
            return Verdict(Classification.CONFLICT, txn, _difference(txn, line))
        key = hash(fitid)
        packed = _pack(line.amount, line.date)
        first = self._seen.get(key)
        if first is None:
            first = self._seen_before.get(key)
        if first is None:
            self._seen[key] = packed
            if len(self._seen) >= SEEN_WINDOW:
                self._seen_before, self._seen = self._seen, {}
            return Verdict(Classification.NEW)
        if first == packed:
            return Verdict(Classification.DUPLICATE, None, "repeats an earlier line of this file")
        return Verdict(
            Classification.CONFLICT,
            None,
            "an earlier line of this file has the same FITID with another amount or date",
        )

    def _fuzzy_verdict(self, line: StatementLine) -> Verdict:
        candidates = self._by_amount.get(line.amount)
        if not candidates:
            return Verdict(Classification.NEW)
        words = description_words(line.description)
        best: tuple[int, date, str] | None = None
        match: ExistingTransaction | None = None
        for txn in candidates:
            gap = abs((txn.date - line.date).days)
            if gap > FUZZY_DAYS or txn.id in self._used:
                continue
            if not any(similar(words, w) for w in self._words_of(txn)):
                continue
            rank = (gap, txn.date, txn.id)
            if best is None or rank < best:
                best, match = rank, txn
        if match is None:
            return Verdict(Classification.NEW)
        self._used.add(match.id)
        gap = abs((match.date - line.date).days)
        when = "on the same day" if gap == 0 else f"{gap} day(s) apart"
        return Verdict(
            Classification.DUPLICATE, match, f"same amount and a similar description, {when}"
        )


def _difference(txn: ExistingTransaction, line: StatementLine) -> str:
    parts = []
    if txn.amount != line.amount:
        parts.append(f"amount {txn.amount} in the ledger, {line.amount} in the statement")
    if txn.date != line.date:
        parts.append(f"date {txn.date.isoformat()} in the ledger, {line.date.isoformat()} here")
    return "same FITID, different " + "; ".join(parts)


# --- accounts ---------------------------------------------------------------------------------

_TYPE_LABELS: Final = {
    "pt-BR": {
        AccountType.CHECKING: "Conta corrente",
        AccountType.SAVINGS: "Poupança",
        AccountType.CREDIT: "Cartão de crédito",
        AccountType.INVESTMENT: "Investimentos",
        AccountType.CASH: "Dinheiro",
    },
    "en": {
        AccountType.CHECKING: "Checking",
        AccountType.SAVINGS: "Savings",
        AccountType.CREDIT: "Credit card",
        AccountType.INVESTMENT: "Investments",
        AccountType.CASH: "Cash",
    },
}
_NAME_MAX: Final = 120


def _key(value: str | None) -> str:
    """An account number or bank code compared loosely: "0001-2" == "12" == "00012"."""
    return re.sub(r"[^0-9a-z]", "", (value or "").casefold()).lstrip("0")


def statement_account_type(info: StatementInfo) -> AccountType:
    if info.account_type is not None:
        return info.account_type
    return AccountType.CREDIT if info.kind is StatementKind.CREDIT_CARD else AccountType.CHECKING


def statement_bank_code(info: StatementInfo) -> str | None:
    """The statement's bank: BANKID for bank statements, the institution's FID otherwise."""
    return info.bank_id or info.fid


def matches_account(account: Account, info: StatementInfo, name: str) -> bool:
    """Whether `account` is the one `info` is a statement of.

    With an account number in the statement (OFX ACCTID): the numbers are equal (ignoring
    punctuation and leading zeros) and, when both sides know it, so is the bank (BANKID or
    FID against the account's bank code). Without one (CSV): an account this feature created
    for the same kind of file before, recognised by its name, type and currency."""
    if info.account_id:
        if not account.number or _key(account.number) != _key(info.account_id):
            return False
        if not account.bank_code:
            return True
        banks = {_key(b) for b in (info.bank_id, info.fid) if b}
        return not banks or _key(account.bank_code) in banks
    return (
        account.number is None
        and account.name == name
        and account.type is statement_account_type(info)
        and account.currency == info.currency
    )


def _bank_label(info: StatementInfo, preset_title: str | None) -> str | None:
    if info.org:
        return info.org.strip()
    if preset_title:
        return preset_title.split(" — ")[0].strip()
    return None


def new_account_name(info: StatementInfo, locale: str, preset_title: str | None = None) -> str:
    """A name a person recognises: bank, kind of account and the number's last digits
    ("Banco do Brasil Conta corrente •8765-4"), or for a CSV without an account number the
    bank of its preset ("Nubank Cartão de crédito") or "Imported account (CSV)"."""
    labels = _TYPE_LABELS.get(locale, _TYPE_LABELS["en"])
    label = labels[statement_account_type(info)]
    bank = _bank_label(info, preset_title)
    if info.account_id:
        digits = info.account_id.strip()
        tail = digits[-6:] if len(digits) > 6 else digits
        name = f"{bank} {label} •{tail}" if bank else f"{label} •{tail}"
    elif bank:
        name = f"{bank} {label}"
    else:
        name = "Conta importada (CSV)" if locale == "pt-BR" else "Imported account (CSV)"
    return name[:_NAME_MAX]


# --- the import document ----------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    new: int = 0
    duplicate: int = 0
    conflict: int = 0
    error: int = 0

    def add(self, c: Classification) -> Counts:
        return Counts(**{**self.as_dict(), c.value: getattr(self, c.value) + 1})

    def as_dict(self) -> dict[str, int]:
        return {
            "new": self.new,
            "duplicate": self.duplicate,
            "conflict": self.conflict,
            "error": self.error,
        }


@dataclass(frozen=True)
class StatementSummary:
    """One statement of the file and where it went."""

    index: int
    kind: str
    currency: str
    account_id: str
    account_created: bool
    lines: int
    errors: int
    bank_id: str | None = None
    account_number: str | None = None
    start: date | None = None
    end: date | None = None
    ledger_balance: int | None = None
    preset: str | None = None
    # The magnitudes of its lines' credits and of their debits: what a commit can move at
    # most (None: staged before these were kept).
    credits: int | None = None
    debits: int | None = None


@dataclass(frozen=True)
class Import:
    id: str
    status: ImportStatus
    file_name: str
    object_name: str
    size: int
    sha256: str
    created_at: datetime
    updated_at: datetime
    format: str | None = None
    preset: str | None = None
    mapping: str | None = None  # the caller's CsvMapping, as JSON
    currency: str | None = None
    account_id: str | None = None  # the caller's choice
    account_ids: tuple[str, ...] = ()
    counts: Counts = Counts()
    processed: int = 0
    total: int = 0
    reason: str | None = None
    statements: tuple[StatementSummary, ...] = ()
    committed: int = 0
    reverted: int = 0
    # The last row of the running commit's or revert's last settled chunk (see the service's
    # ledger-batch runner): a resumed run starts after it.
    cursor: str | None = None
    attempts: int = 0
    # Bumped by every commit/revert request that needs a task (names the task uniquely).
    requests: int = 0
    first_date: date | None = None
    last_date: date | None = None
    processed_at: datetime | None = None
    committed_at: datetime | None = None
    reverted_at: datetime | None = None

    # --- transitions (see the lifecycle at the top). Each returns the import after it, or
    # None when it does not apply to this status: the caller then leaves the import as it is
    # (a task delivered twice, a request that came too late). ---------------------------------

    def start(self, now: datetime) -> Import | None:
        """The worker takes the upload to stage it (again, after a crash)."""
        if self.status not in (ImportStatus.UPLOADED, ImportStatus.PROCESSING):
            return None
        return replace(
            self,
            status=ImportStatus.PROCESSING,
            attempts=self.attempts + 1,
            processed=0,
            updated_at=now,
        )

    def staged(
        self,
        now: datetime,
        counts: Counts,
        total: int,
        statements: tuple[StatementSummary, ...],
        account_ids: tuple[str, ...],
        days: Iterable[date],
    ) -> Import | None:
        """Every line is staged: ready for review."""
        if self.status is not ImportStatus.PROCESSING:
            return None
        days = list(days)
        return replace(
            self,
            status=ImportStatus.READY,
            counts=counts,
            processed=total,
            total=total,
            statements=statements,
            account_ids=account_ids,
            first_date=min(days) if days else None,
            last_date=max(days) if days else None,
            processed_at=now,
            updated_at=now,
            reason=None,
        )

    def failed(self, reason: str, now: datetime) -> Import | None:
        """Staging cannot go on; `reason` tells the user what to do."""
        if self.status not in (ImportStatus.UPLOADED, ImportStatus.PROCESSING):
            return None
        return replace(self, status=ImportStatus.FAILED, reason=reason, updated_at=now)

    def begin_commit(self, now: datetime) -> Import | None:
        """Commit (or resume committing): every request counts (it names its task)."""
        if self.status not in (ImportStatus.READY, ImportStatus.COMMITTING):
            return None
        return replace(
            self, status=ImportStatus.COMMITTING, requests=self.requests + 1, updated_at=now
        )

    def finish_commit(self, now: datetime) -> Import | None:
        """Every included row is a transaction."""
        if self.status is not ImportStatus.COMMITTING:
            return None
        return replace(self, status=ImportStatus.COMMITTED, committed_at=now, updated_at=now)

    def begin_revert(self, now: datetime) -> Import | None:
        """Undo the commit (or resume undoing it): a revert walks the rows from the first,
        a resumed one from its cursor."""
        if self.status not in (ImportStatus.COMMITTED, ImportStatus.REVERTING):
            return None
        return replace(
            self,
            status=ImportStatus.REVERTING,
            requests=self.requests + 1,
            updated_at=now,
            cursor=self.cursor if self.status is ImportStatus.REVERTING else None,
        )

    def finish_revert(self, now: datetime) -> Import | None:
        """Every transaction of the commit is gone."""
        if self.status is not ImportStatus.REVERTING:
            return None
        return replace(self, status=ImportStatus.REVERTED, reverted_at=now, updated_at=now)


@dataclass(frozen=True, slots=True)
class StagedRow:
    """A statement line (or unreadable record) waiting for review."""

    id: str
    statement: int
    ordinal: int
    line_no: int
    classification: Classification
    include: bool
    account_id: str | None = None
    fitid: str | None = None
    date: date | None = None
    amount: int | None = None
    currency: str | None = None
    description: str | None = None
    memo: str | None = None
    name: str | None = None
    raw_type: str | None = None
    reason: str | None = None  # why a line is an error, or what a duplicate/conflict matched
    matched: ExistingTransaction | None = None
    resolution: Resolution | None = None
    committed: bool = False
    transaction_id: str | None = None
    # The transaction a revert deleted for this row, as it was (what its chunk takes away
    # from balances and read models, also after a crash between the delete and the settle).
    reverted_as: Transaction | None = None

    @property
    def pending(self) -> bool:
        """Waiting to become a transaction at commit."""
        return self.include and not self.committed


def stage(line: StatementLine, account_id: str, verdict: Verdict) -> StagedRow:
    return StagedRow(
        id=row_id(line.statement, line.ordinal),
        statement=line.statement,
        ordinal=line.ordinal,
        line_no=line.line_no,
        classification=verdict.classification,
        # New lines go in by default; duplicates stay out; conflicts wait for a decision.
        include=verdict.classification is Classification.NEW,
        account_id=account_id,
        fitid=line.fitid,
        date=line.date,
        amount=line.amount,
        currency=line.currency,
        description=line.description,
        memo=line.memo,
        name=line.name,
        raw_type=line.raw_type,
        reason=verdict.note,
        matched=verdict.matched,
    )
