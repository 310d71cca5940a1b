"""Bank statement parsers: OFX (SGML 1.x, XML 2.x; bank and credit-card) and CSV (mapping or
preset), pure and streaming. See DECISION.md for why they are written by hand.

    for event in parse_statement(file_object):          # binary, opened with "rb"
        match event:
            case StatementInfo(): ...                      # a statement starts: account, currency
            case StatementLine(): ...                      # a transaction (amount in minor units)
            case LineError(): ...                          # a record that couldn't be read
            case StatementEnd(): ...                       # balances and counts

`StatementError` (with `.reason` for the user) means the whole file can't be imported.
"""

from valorize.domain.statements.amounts import AmountError, parse_amount
from valorize.domain.statements.api import Format, parse_statement, sniff_format
from valorize.domain.statements.dates import DateError, parse_ofx_date, parse_ofx_datetime
from valorize.domain.statements.events import (
    LineError,
    StatementEnd,
    StatementError,
    StatementEvent,
    StatementInfo,
    StatementKind,
    StatementLine,
)
from valorize.domain.statements.presets import GENERIC, PRESETS, CsvMapping, Preset

__all__ = [
    "GENERIC",
    "PRESETS",
    "AmountError",
    "CsvMapping",
    "DateError",
    "Format",
    "LineError",
    "Preset",
    "StatementEnd",
    "StatementError",
    "StatementEvent",
    "StatementInfo",
    "StatementKind",
    "StatementLine",
    "parse_amount",
    "parse_ofx_date",
    "parse_ofx_datetime",
    "parse_statement",
    "sniff_format",
]
