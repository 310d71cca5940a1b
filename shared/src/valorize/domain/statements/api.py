"""The statement parsers' front door: `sniff_format` and `parse_statement`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO, Final, Literal

from valorize.domain.statements.csv_parser import read_csv
from valorize.domain.statements.events import StatementError, StatementEvent
from valorize.domain.statements.ofx_parser import not_ofx_reason, read_ofx
from valorize.domain.statements.presets import CsvMapping
from valorize.domain.statements.text import split_bom

Format = Literal["ofx", "csv"]
CHUNK_SIZE: Final = 65536
SNIFF_BYTES: Final = 8192  # what `sniff_format` needs to see

_OFX_MARK = re.compile(r"<\s*ofx\s*>|^\s*ofxheader\s*:|<\?ofx\b", re.IGNORECASE | re.MULTILINE)
_CSV_DELIMITERS = (",", ";", "\t", "|")


def sniff_format(head: bytes) -> Format | None:
    """ "ofx" or "csv" from the first bytes of a file (8 KiB is plenty), or None when it is
    neither: empty, HTML, PDF, a spreadsheet, binary, or text without columns."""
    encoding, bom_len = split_bom(head)
    body = head[bom_len:SNIFF_BYTES]
    if encoding is not None and encoding != "utf-8":
        text = body.decode(encoding, "replace")
    else:
        text = body.decode("latin-1")
    s = text.lstrip()
    if not s or s.startswith("%PDF"):
        return None
    if _OFX_MARK.search(s):
        return "ofx"
    if s.startswith("<") or "<html" in s[:2048].lower():
        return None
    if any(ord(c) < 32 and c not in "\t\r\n\x0c" for c in s[:4096]):
        return None  # NUL and other control characters: a binary file
    lines = [ln for ln in s.splitlines()[:30] if ln.strip()]
    if any(d in ln for ln in lines for d in _CSV_DELIMITERS):
        return "csv"
    return None


def _not_a_statement(head: bytes) -> str:
    reason = not_ofx_reason(head)
    if not reason.startswith("This is not an OFX file"):
        return reason  # empty, PDF, spreadsheet, HTML, a truncated OFX header
    if any(b < 32 and b not in b"\t\r\n\x0c" for b in head[:SNIFF_BYTES]):
        return "This is a binary file, not a bank statement: export it as OFX or CSV"
    return (
        "This is neither an OFX nor a CSV statement: export the statement from your bank as "
        "OFX (or as CSV)"
    )


def parse_statement(
    stream: BinaryIO,
    format: Format | None = None,
    mapping: CsvMapping | None = None,
    preset: str | None = None,
    *,
    currency: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[StatementEvent]:
    """Read a bank statement from a binary file object, streaming.

    Yields, in file order, for each statement in the file: `StatementInfo`, then its
    `StatementLine`s and `LineError`s, then `StatementEnd`. Memory stays at about one chunk
    plus one row whatever the file's size.

    `format`: "ofx" | "csv" | None (sniffed from the content). `mapping` or `preset` (a name
    from `PRESETS`, or "generic") say how to read a CSV; with neither, the preset is
    recognised from the header row. `currency`: for a CSV, the currency of its amounts (else
    the preset's, else BRL); for an OFX, used only when a statement has no valid CURDEF.

    Raises `StatementError(reason)` when the file as a whole can't be read — possibly after
    some events were yielded (truncation is only found at the end), so a consumer must treat
    the whole import as failed then. Nothing is read before the first `next()`."""
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(max(chunk_size, 1))
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError("parse_statement needs a binary stream (open the file with 'rb')")
        if not chunk:
            break
        head += bytes(chunk)
    if format is None:
        if not head.strip(b" \t\r\n\xef\xbb\xbf"):
            raise StatementError("The file is empty")
        sniffed = sniff_format(head)
        if sniffed is None:
            raise StatementError(_not_a_statement(head))
        format = sniffed

    def chunks() -> Iterator[bytes]:
        yield head
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                return
            yield bytes(chunk)

    if format == "ofx":
        yield from read_ofx(chunks(), currency_fallback=currency)
    elif format == "csv":
        yield from read_csv(chunks(), mapping=mapping, preset=preset, currency=currency)
    else:
        raise ValueError(f"unknown statement format {format!r}")
