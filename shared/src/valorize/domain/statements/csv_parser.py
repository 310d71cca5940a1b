"""A streaming CSV statement reader: encoding, delimiter, header row, preset and value formats
are worked out from the first rows; the rest is read one row at a time.

A row that can't be read becomes a `LineError` and the rows after it go on. Blank rows,
repeated header rows and balance-only rows (debit and credit both empty or zero, like
Bradesco's "SALDO ANTERIOR") are skipped without an error.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from itertools import chain
from typing import Final

from valorize.domain.money import is_currency, minor_unit_exponent
from valorize.domain.statements.amounts import AmountError, parse_amount
from valorize.domain.statements.dates import (
    CANDIDATE_FORMATS,
    DateError,
    compile_date_format,
)
from valorize.domain.statements.events import (
    LineError,
    StatementEnd,
    StatementError,
    StatementEvent,
    StatementInfo,
    StatementKind,
    StatementLine,
)
from valorize.domain.statements.presets import (
    GENERIC,
    PRESETS,
    ColumnRef,
    CsvMapping,
    generic_mapping,
    recognise,
)
from valorize.domain.statements.text import (
    CP1252,
    UTF8,
    Decoder,
    fold_name,
    looks_utf8,
    resolve_label,
    split_bom,
)

DEFAULT_CURRENCY: Final = "BRL"
HEAD_BYTES: Final = 65536
HEAD_ROWS: Final = 40  # rows searched for the header
SAMPLE_ROWS: Final = 200  # rows after the header used to detect date and number formats
MAX_LINE_CHARS: Final = 1 << 20
DELIMITERS: Final = (";", ",", "\t", "|")
NEED: Final = (
    "need a date, a description and an amount (or debit and credit) column — choose a "
    "preset or send a mapping"
)


def _lines(decoder: Decoder, chunks: Iterator[bytes]) -> Iterator[str]:
    """Decoded lines ending in "\\n" (CRLF and lone CR normalised), one at a time."""
    tail = ""
    for chunk in chain(chunks, [None]):
        final = chunk is None
        buf = tail + decoder.decode(b"" if chunk is None else chunk, final=final)
        keep_cr = not final and buf.endswith("\r")
        if keep_cr:
            buf = buf[:-1]
        if "\r" in buf:
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        parts = buf.split("\n")
        tail = parts.pop()
        if keep_cr:
            tail += "\r"
        if len(tail) > MAX_LINE_CHARS:
            raise StatementError("This is not a CSV statement: it has a line longer than 1 MB")
        for part in parts:
            yield part + "\n"
    if tail:
        yield tail + "\n"


def _encoding(head: bytes, mapping: CsvMapping | None) -> tuple[str, int]:
    bom_encoding, bom_len = split_bom(head)
    if mapping is not None and mapping.encoding is not None:
        return resolve_label(mapping.encoding) or UTF8, bom_len
    if bom_encoding is not None:
        return bom_encoding, bom_len
    if b"\x00" in head[:4096]:
        raise StatementError("This is a binary file, not a CSV statement")
    return (UTF8 if looks_utf8(head) else CP1252), 0


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    header: list[str] | None  # None: the file has no header row
    data_start: int  # index into the head lines of the first data line
    preset: str
    mapping: CsvMapping


def _rows(lines: list[str], delimiter: str) -> Iterator[tuple[list[str], int]]:
    """(row, index of the line after it) for the rows of `lines`; stops quietly at a row the
    csv module can't read (the caller then tries another delimiter)."""
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        for row in reader:
            yield row, reader.line_num
    except csv.Error:
        return


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _has_columns(header: list[str], mapping: CsvMapping) -> bool:
    folded = {fold_name(h) for h in header}
    return all(
        (isinstance(ref, int) and ref < len(header))
        or (isinstance(ref, str) and fold_name(ref) in folded)
        for ref in mapping.columns()
    )


def _found(lines: list[str]) -> str:
    """The columns of the first row that looks like a header, for an error message."""
    best: list[str] = []
    for delimiter in DELIMITERS:
        for row, _ in _rows(lines[:HEAD_ROWS], delimiter):
            if not _blank(row):
                if len(row) > len(best):
                    best = row
                break
    cells = [c.strip() for c in best if c.strip()][:12]
    if not cells:
        return f"No columns found; {NEED}"
    shown = ", ".join(c[:40] for c in cells)
    return f"Columns found: {shown}; {NEED}"


def _layout(lines: list[str], mapping: CsvMapping | None, preset: str | None) -> _Layout:
    if preset is not None and preset != GENERIC and preset not in PRESETS:
        known = ", ".join([*PRESETS, GENERIC])
        raise StatementError(f"Unknown CSV preset {preset!r}; the presets are: {known}")
    fixed = (
        mapping if mapping is not None else PRESETS[preset].mapping if preset in PRESETS else None
    )
    name = "custom" if mapping is not None else preset
    delimiters = (fixed.delimiter,) if fixed is not None and fixed.delimiter else DELIMITERS

    if fixed is not None and not fixed.has_header:
        delimiter = fixed.delimiter or _sniff_delimiter(lines)
        return _Layout(delimiter, None, fixed.skip_rows or 0, name or "custom", fixed)

    for delimiter in delimiters:
        for index, (row, next_line) in enumerate(_rows(lines, delimiter)):
            if fixed is not None and fixed.skip_rows is not None:
                if index < fixed.skip_rows:
                    continue
                if _has_columns(row, fixed):
                    return _Layout(delimiter, row, next_line, name or "custom", fixed)
                break
            if index >= HEAD_ROWS:
                break
            if len(row) < 2:
                continue
            if fixed is not None:
                if _has_columns(row, fixed):
                    return _Layout(delimiter, row, next_line, name or "custom", fixed)
            elif preset == GENERIC:
                generic = generic_mapping(row)
                if generic is not None:
                    return _Layout(delimiter, row, next_line, GENERIC, generic)
            else:
                found = recognise(row)
                if found is not None:
                    return _Layout(delimiter, row, next_line, found[0], found[1])
    if fixed is not None:
        wanted = ", ".join(str(c) for c in fixed.columns())
        raise StatementError(
            f"The columns {wanted} were not found in one header row. {_found(lines)}"
        )
    raise StatementError(_found(lines))


def _sniff_delimiter(lines: list[str]) -> str:
    sample = "".join(lines[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in DELIMITERS}
        return max(counts, key=lambda d: counts[d])


def _index(ref: ColumnRef, header: list[str] | None) -> int:
    if isinstance(ref, int):
        return ref
    assert header is not None  # CsvMapping forbids names without a header row
    want = fold_name(ref)
    for i, cell in enumerate(header):
        if fold_name(cell) == want:
            return i
    raise StatementError(f"Column {ref!r} not found")  # pragma: no cover - checked in _layout


def _detect_date_format(samples: list[str]) -> str | None:
    """The candidate format that reads the most samples (earliest wins a tie), or None."""
    values = [s for s in samples if s.strip()]
    best, best_count = None, 0
    for fmt in CANDIDATE_FORMATS:
        parse = compile_date_format(fmt)
        count = 0
        for v in values:
            try:
                parse(v)
            except DateError:
                continue
            count += 1
        if count > best_count:
            best, best_count = fmt, count
    return best


def _detect_decimal(samples: list[str]) -> str | None:
    """ "." or "," by majority of the samples that show it unambiguously, or None."""
    votes = {".": 0, ",": 0}
    for s in samples:
        s = s.strip().rstrip("-)").rstrip()
        dot, comma = s.rfind("."), s.rfind(",")
        if dot >= 0 and comma >= 0:
            votes["." if dot > comma else ","] += 1
        elif dot >= 0 or comma >= 0:
            pos = max(dot, comma)
            if 1 <= len(s) - pos - 1 <= 2:
                votes[s[pos]] += 1
    if votes["."] == votes[","]:
        return None
    return "." if votes["."] > votes[","] else ","


@dataclass(frozen=True)
class _Columns:
    date: int
    description: list[int]
    amount: int | None
    debit: int | None
    credit: int | None
    fitid: int | None


def read_csv(
    chunks: Iterable[bytes],
    *,
    mapping: CsvMapping | None = None,
    preset: str | None = None,
    currency: str | None = None,
) -> Iterator[StatementEvent]:
    """Events of the CSV statement whose bytes `chunks` yields: one StatementInfo, its lines
    and line errors, one StatementEnd. Raises StatementError when the file as a whole can't
    be read (empty, binary, no recognisable header, unknown preset)."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise StatementError("The file is empty")
    encoding, bom_len = _encoding(head, mapping)
    decoder = Decoder(encoding)
    lines_iter = _lines(decoder, chain([head[bom_len:]], it))
    head_lines: list[str] = []
    for line in lines_iter:
        head_lines.append(line)
        if len(head_lines) >= HEAD_ROWS + SAMPLE_ROWS:
            break
    layout = _layout(head_lines, mapping, preset)
    m = layout.mapping
    header = layout.header
    cols = _Columns(
        date=_index(m.date, header),
        description=[_index(r, header) for r in m.description_columns()],
        amount=None if m.amount is None else _index(m.amount, header),
        debit=None if m.debit is None else _index(m.debit, header),
        credit=None if m.credit is None else _index(m.credit, header),
        fitid=None if m.fitid is None else _index(m.fitid, header),
    )
    need = (
        max(
            i
            for i in (cols.date, *cols.description, cols.amount, cols.debit, cols.credit)
            if i is not None
        )
        + 1
    )

    sample_rows = [
        row
        for row, _ in _rows(head_lines[layout.data_start :], layout.delimiter)
        if len(row) >= need
    ][:SAMPLE_ROWS]
    date_format = m.date_format or _detect_date_format([r[cols.date] for r in sample_rows])
    if date_format is None and sample_rows:
        shown = sample_rows[0][cols.date].strip()[:30]
        raise StatementError(
            f"The dates in column {m.date!r} (e.g. {shown!r}) are in an unknown format; send "
            "a mapping with date_format, e.g. %d/%m/%Y"
        )
    parse_date = compile_date_format(date_format or "%d/%m/%Y")
    decimal: str | None = m.decimal_separator
    if decimal is None:
        amount_cols = [c for c in (cols.amount, cols.debit, cols.credit) if c is not None]
        decimal = _detect_decimal([r[c] for r in sample_rows for c in amount_cols])

    found = PRESETS.get(layout.preset)
    code = (currency or (found.currency if found else None) or DEFAULT_CURRENCY).upper()
    if not is_currency(code):
        raise StatementError(f"Unknown currency {code!r}")
    exponent = minor_unit_exponent(code)
    yield StatementInfo(
        index=0,
        format="csv",
        kind=found.kind if found else StatementKind.BANK,
        currency=code,
        account_type=found.account_type if found else None,
        preset=layout.preset,
    )
    yield from _read_rows(
        chain(head_lines[layout.data_start :], lines_iter),
        first_line=layout.data_start + 1,
        delimiter=layout.delimiter,
        cols=cols,
        need=need,
        header=[fold_name(h) for h in header] if header else None,
        parse_date=parse_date,
        amount=_amount_reader(m, exponent, decimal),
        stop_at=fold_name(m.stop_at) if m.stop_at else None,
        flip=m.sign == "debit_positive",
        currency=code,
    )


def _amount_reader(m: CsvMapping, exponent: int, decimal: str | None) -> Callable[[str], int]:
    thousands = m.thousands_separator

    def read(text: str) -> int:
        return parse_amount(text, exponent, decimal=decimal, thousands=thousands)

    return read


def _not_a_transaction(row: list[str], header: list[str] | None, stop_at: str | None) -> str | None:
    """ "stop" for the stop marker row, "skip" for a repeated header row, else None."""
    if stop_at is not None:
        first = next((c for c in row if c.strip()), "")
        if fold_name(first).startswith(stop_at):
            return "stop"
    if header is not None:
        folded = [fold_name(c) for c in row]
        while folded and not folded[-1]:
            folded.pop()
        if folded and folded == header[: len(folded)] and len(folded) >= min(2, len(header)):
            return "skip"
    return None


def _read_rows(
    lines: Iterator[str],
    *,
    first_line: int,
    delimiter: str,
    cols: _Columns,
    need: int,
    header: list[str] | None,
    parse_date: Callable[[str], date],
    amount: Callable[[str], int],
    stop_at: str | None,
    flip: bool,
    currency: str,
) -> Iterator[StatementEvent]:
    reader = csv.reader(lines, delimiter=delimiter)
    ordinal = n_lines = n_errors = 0
    consumed = 0  # lines the reader had consumed before the current row
    signed = cols.amount is not None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line_no = first_line + consumed
            if reader.line_num == consumed:  # pragma: no cover - csv always advances
                break
            consumed = reader.line_num
            ordinal += 1
            n_errors += 1
            yield LineError(0, ordinal, line_no, f"unreadable row: {exc}")
            continue
        line_no = first_line + consumed
        consumed = reader.line_num
        if not "".join(row).strip():
            continue
        if len(row) < need:
            skip = _not_a_transaction(row, header, stop_at)
            if skip == "stop":
                break
            if skip is None:
                ordinal += 1
                n_errors += 1
                yield LineError(
                    0, ordinal, line_no, f"the row has {len(row)} columns; {need} needed"
                )
            continue
        try:
            if signed:
                assert cols.amount is not None
                raw = row[cols.amount]
                if not raw.strip():
                    raise AmountError("the amount is empty")
                value = amount(raw)
                if flip:
                    value = -value
            else:
                assert cols.debit is not None and cols.credit is not None
                debit_text, credit_text = row[cols.debit].strip(), row[cols.credit].strip()
                debit = abs(amount(debit_text)) if debit_text else 0
                credit = abs(amount(credit_text)) if credit_text else 0
                if debit == 0 and credit == 0:
                    continue  # a balance line ("SALDO ANTERIOR"), not a transaction
                value = credit - debit
            day = parse_date(row[cols.date])
        except (AmountError, DateError) as exc:
            # Only rows that aren't transactions are checked for being a repeated header or
            # the stop marker: the common case pays nothing for them.
            skip = _not_a_transaction(row, header, stop_at)
            if skip == "stop":
                break
            if skip is None:
                ordinal += 1
                n_errors += 1
                yield LineError(0, ordinal, line_no, str(exc))
            continue
        parts = [row[i].strip() for i in cols.description]
        description = " - ".join(" ".join(p.split()) for p in parts if p)
        fitid = row[cols.fitid].strip() if cols.fitid is not None and cols.fitid < len(row) else ""
        ordinal += 1
        n_lines += 1
        yield StatementLine(
            statement=0,
            ordinal=ordinal,
            line_no=line_no,
            fitid=fitid or None,
            date=day,
            amount=value,
            currency=currency,
            description=description,
        )
    yield StatementEnd(index=0, lines=n_lines, errors=n_errors)
