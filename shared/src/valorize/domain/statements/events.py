"""What a statement parser yields, in file order, and the one error that stops it.

A file is one or more statements; each one comes out as

    StatementInfo, (StatementLine | LineError)*, StatementEnd

OFX files may hold several statements (accounts); a CSV file is always one. Everything is
immutable, uses integer minor units for money and `datetime.date` for days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from valorize.domain.model import AccountType


class StatementError(Exception):
    """The whole file cannot be read. `reason` is written for the person who uploaded it and
    says what to do about it; it never contains a stack trace or the file's bytes."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StatementKind(StrEnum):
    BANK = "bank"
    CREDIT_CARD = "credit_card"


@dataclass(frozen=True, slots=True)
class StatementInfo:
    """The head of one statement: which account, in which currency, over which period.

    Emitted before the statement's first line. The ledger balance is not here: in OFX it
    follows the transactions, so a streaming parser reports it in `StatementEnd`."""

    index: int  # 0-based position of the statement in the file
    format: str  # "ofx" | "csv"
    kind: StatementKind
    currency: str  # ISO 4217
    account_type: AccountType | None = None
    account_type_raw: str | None = None  # OFX ACCTTYPE as written (CHECKING, MONEYMRKT, ...)
    bank_id: str | None = None  # OFX BANKACCTFROM/BANKID (bank code / routing number)
    branch_id: str | None = None  # OFX BRANCHID (agência)
    account_id: str | None = None  # OFX ACCTID (account or card number)
    org: str | None = None  # OFX SIGNON FI/ORG (institution name)
    fid: str | None = None  # OFX SIGNON FI/FID (institution id)
    start: date | None = None  # OFX DTSTART
    end: date | None = None  # OFX DTEND
    preset: str | None = None  # CSV: the preset used ("custom" for a caller's mapping)


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One transaction. `amount` is signed (negative = money out) in minor units of
    `currency`; `description` is what a person would call it (OFX: NAME and MEMO combined,
    whichever is present); `memo` and `name` keep the raw fields."""

    statement: int  # StatementInfo.index
    ordinal: int  # 1-based position among all records (lines and line errors) in the file
    line_no: int  # 1-based physical line where the record starts
    fitid: str | None
    date: date
    amount: int
    currency: str
    description: str
    memo: str | None = None
    name: str | None = None
    raw_type: str | None = None  # OFX TRNTYPE as written (the sign of `amount` decides)


@dataclass(frozen=True, slots=True)
class LineError:
    """A record that could not be read; the records around it still are."""

    statement: int
    ordinal: int
    line_no: int
    reason: str


@dataclass(frozen=True, slots=True)
class StatementEnd:
    """The tail of one statement: balances (OFX LEDGERBAL / AVAILBAL, when present) and how
    many lines and line errors it had."""

    index: int
    lines: int
    errors: int
    ledger_balance: int | None = None
    ledger_date: date | None = None
    available_balance: int | None = None
    available_date: date | None = None


StatementEvent = StatementInfo | StatementLine | LineError | StatementEnd
