"""A streaming OFX reader: SGML 1.x and XML 2.x, bank and credit-card statements.

Why our own (DECISION.md has the evidence): ofxtools and ofxparse read the whole file into one
string and build a full tree before the first transaction comes out (≈ 35x the file in
memory), both move dates to UTC, and each rejects a different set of files that real banks
send (missing FITID, TRNTYPE outside the spec, an empty `<NAME>`, no LEDGERBAL, CHARSET lies).

How: the body is decoded incrementally and cut into `<TAG>text` tokens by one regex. A small
set of *known aggregates* is tracked on a stack; every other tag is a leaf whose text belongs
to the innermost known aggregate. That makes SGML (leaf tags never closed, sometimes empty)
and XML the same thing, needs no DTD, and keeps memory at one chunk plus one transaction.
Closing an aggregate closes whatever is still open inside it, as SGML does.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Final

from valorize.domain.model import AccountType
from valorize.domain.money import is_currency, minor_unit_exponent
from valorize.domain.statements.amounts import AmountError, parse_amount
from valorize.domain.statements.dates import DateError, parse_ofx_date
from valorize.domain.statements.events import (
    LineError,
    StatementEnd,
    StatementError,
    StatementEvent,
    StatementInfo,
    StatementKind,
    StatementLine,
)
from valorize.domain.statements.text import (
    CP1252,
    UTF8,
    Decoder,
    looks_utf8,
    resolve_label,
    split_bom,
)

# A value (text between two tags) longer than this is not OFX; it also bounds memory.
MAX_TOKEN_CHARS: Final = 1 << 20

_OFX_OPEN = re.compile(r"<\s*OFX\s*>", re.IGNORECASE)
# General tokens, one per "<": (close, tag, text, other): a tag and the text up to the next
# "<", or (other) a comment, CDATA section, processing instruction or stray "<" and its text.
_GENERAL = r"""<(?:
        (/?)([A-Za-z][A-Za-z0-9._]*)[^<>]*>([^<]*)
      | (!--.*?-->[^<]*|!\[CDATA\[.*?\]\]>[^<]*|[?!][^<>]*>[^<]*|[^<]*)
    )"""
_GENERAL_TOKEN = re.compile(_GENERAL, re.VERBOSE | re.DOTALL)
# The same, preceded by the fast path: the inside of a whole, well-formed, non-empty
# `<STMTTRN>...</STMTTRN>` (upper-case, not nested, not crossing the end of its list or
# statement) and the text after it, read in one go.
_TOKEN = re.compile(
    r"<STMTTRN>(?!</STMTTRN>)([^<]*(?:<(?!/?STMTTRN>|/BANKTRANLIST>|/C?C?STMTRS>|/OFX>)[^<]*)*)"
    r"</STMTTRN>([^<]*)|" + _GENERAL,
    re.VERBOSE | re.DOTALL,
)
_LEAF = re.compile(r"<([A-Z][A-Z0-9._]*)>([^<]*)")
_CDATA = re.compile(r"!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_HEADER_FIELD = re.compile(r"^\s*([A-Za-z]+)\s*:\s*(.*?)\s*$", re.MULTILINE)
_XML_ENCODING = re.compile(r"""<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""", re.IGNORECASE)

_STATEMENTS: Final = {"STMTRS": StatementKind.BANK, "CCSTMTRS": StatementKind.CREDIT_CARD}
# Aggregates we track. Anything else is treated as a leaf; the leaves of an unknown aggregate
# land in the nearest known one, which is harmless because we only read names listed here.
_KNOWN: Final = frozenset(
    {
        "OFX",
        "SIGNONMSGSRSV1",
        "SONRS",
        "FI",
        "STATUS",
        "BANKMSGSRSV1",
        "CREDITCARDMSGSRSV1",
        "STMTTRNRS",
        "CCSTMTTRNRS",
        "STMTRS",
        "CCSTMTRS",
        "BANKACCTFROM",
        "CCACCTFROM",
        "BANKTRANLIST",
        "STMTTRN",
        "PAYEE",
        "BANKACCTTO",
        "CCACCTTO",
        "CURRENCY",
        "ORIGCURRENCY",
        "IMAGEDATA",
        "LEDGERBAL",
        "AVAILBAL",
        "BALLIST",
        "BAL",
        "INVSTMTMSGSRSV1",
        "INVSTMTTRNRS",
        "INVSTMTRS",
        "INVTRANLIST",
        "INVBANKTRAN",
        "SIGNUPMSGSRSV1",
        "MKTGINFO",
    }
)
_ACCOUNT_TYPES: Final = {
    "CHECKING": AccountType.CHECKING,
    "SAVINGS": AccountType.SAVINGS,
    "MONEYMRKT": AccountType.SAVINGS,
    "CD": AccountType.INVESTMENT,
    "CREDITLINE": AccountType.CREDIT,
}


def _value(text: str | None) -> str:
    """A leaf's text as stored by the tokenizer (raw, with its trailing whitespace) cleaned."""
    if not text:
        return ""
    text = text.strip()
    if "&" in text:
        # Named and numeric entities (&amp; &lt; &#8212;). A bare "&" ("CAFÉ & CIA", common
        # in SGML files) stays as it is; the original deleted it ("MM" for "M&M").
        text = html.unescape(text)
    return text


def describe(name: str | None, memo: str | None) -> str:
    """What to call a transaction: NAME when MEMO is empty, MEMO when NAME is, the longer
    when one contains the other (banks truncate NAME to 32 characters and repeat it in MEMO),
    otherwise "NAME - MEMO"."""
    n = " ".join((name or "").split())
    m = " ".join((memo or "").split())
    if not n or not m:
        return n or m
    fn, fm = n.casefold(), m.casefold()
    if fn in fm:
        return m
    if fm in fn:
        return n
    return f"{n} - {m}"


class _Statement:
    __slots__ = (
        "account",
        "available",
        "currency",
        "errors",
        "exponent",
        "fields",
        "index",
        "info",
        "kind",
        "ledger",
        "lines",
        "period",
    )

    def __init__(self, index: int, kind: StatementKind, fields: dict[str, str]) -> None:
        self.index = index
        self.kind = kind
        self.fields = fields  # the STMTRS/CCSTMTRS leaves (CURDEF)
        self.account: dict[str, str] = {}
        self.period: dict[str, str] = {}
        self.ledger: dict[str, str] = {}
        self.available: dict[str, str] = {}
        self.info: StatementInfo | None = None
        self.currency = ""
        self.exponent = 2
        self.lines = 0
        self.errors = 0


class OfxReader:
    """The state of one pass over one OFX file (see `read_ofx`). Leaf values are stored raw
    (with trailing whitespace) and cleaned only when read: most leaves are never used."""

    def __init__(self, currency_fallback: str | None) -> None:
        self.currency_fallback = currency_fallback
        self.stack: list[str] = []
        self.frames: list[dict[str, str]] = []
        self.fi: dict[str, str] = {}
        self.stmt: _Statement | None = None
        self.statements = 0
        self.ordinal = 0
        self.closed = False
        self.saw_investment = False
        self.status_message: str | None = None
        self.trn_line = 0
        self.last_leaf: str | None = None  # for a CDATA section that follows a leaf tag
        self.out: list[StatementEvent] = []

    # --- structure ------------------------------------------------------------------------

    def open(self, tag: str, line_no: int) -> None:
        if tag == "STMTTRN":
            if "STMTTRN" in self.stack:  # an unclosed STMTTRN: SGML-style implicit close
                self.close("STMTTRN")
            self.trn_line = line_no
            if self.stmt is not None and self.stmt.info is None:
                self.emit_info(self.stmt)
        elif tag in _STATEMENTS:
            if self.stmt is not None:
                self.close(next(t for t in reversed(self.stack) if t in _STATEMENTS))
            frame: dict[str, str] = {}
            self.stmt = _Statement(self.statements, _STATEMENTS[tag], frame)
            self.statements += 1
            self.stack.append(tag)
            self.frames.append(frame)
            return
        elif tag in ("INVSTMTRS", "INVSTMTMSGSRSV1"):
            self.saw_investment = True
        self.stack.append(tag)
        self.frames.append({})

    def close(self, tag: str) -> None:
        if tag not in self.stack:
            return  # the end tag of a leaf (XML, or SGML written with end tags)
        while self.stack:
            name = self.stack.pop()
            fields = self.frames.pop()
            self.ended(name, fields)
            if name == tag:
                return

    def ended(self, name: str, fields: dict[str, str]) -> None:
        stmt = self.stmt
        if name == "STMTTRN":
            if stmt is not None and (not self.stack or self.stack[-1] != "INVBANKTRAN"):
                self.emit_line(stmt, fields)
        elif name == "PAYEE":
            if self.frames and fields.get("NAME"):
                self.frames[-1].setdefault("PAYEE.NAME", fields["NAME"])
        elif name in ("BANKACCTFROM", "CCACCTFROM"):
            if stmt is not None:
                stmt.account = fields
        elif name == "BANKTRANLIST":
            if stmt is not None:
                stmt.period = fields
                if stmt.info is None:
                    self.emit_info(stmt)
        elif name == "LEDGERBAL":
            if stmt is not None:
                stmt.ledger = fields
        elif name == "AVAILBAL":
            if stmt is not None:
                stmt.available = fields
        elif name in _STATEMENTS:
            if stmt is not None:
                if stmt.info is None:
                    self.emit_info(stmt)
                self.emit_end(stmt)
                self.stmt = None
        elif name == "FI":
            self.fi = fields
        elif name == "STATUS":
            code = _value(fields.get("CODE")) or "0"
            if code != "0":
                self.status_message = _value(fields.get("MESSAGE")) or f"status code {code}"
        elif name == "OFX":
            self.closed = True

    def transaction(self, fields: dict[str, str], line_no: int) -> None:
        """A whole STMTTRN read by the fast path, as if opened and closed here."""
        if "STMTTRN" in self.stack:
            self.close("STMTTRN")
        self.trn_line = line_no
        stmt = self.stmt
        if stmt is not None and (not self.stack or self.stack[-1] != "INVBANKTRAN"):
            self.emit_line(stmt, fields)

    # --- events ---------------------------------------------------------------------------

    def emit_info(self, stmt: _Statement) -> None:
        code = _value(stmt.fields.get("CURDEF")).upper()
        if not is_currency(code):
            fallback = self.currency_fallback
            if fallback is None or not is_currency(fallback):
                shown = f" ({code[:10]!r})" if code else ""
                raise StatementError(
                    f"Statement {stmt.index + 1} has no valid currency (CURDEF){shown}; send "
                    "the account the statement belongs to so its currency can be used"
                )
            code = fallback
        stmt.currency = code
        stmt.exponent = minor_unit_exponent(code)
        acct = stmt.account
        period = stmt.period
        if not period and "BANKTRANLIST" in self.stack:
            # Emitted at the first STMTTRN: DTSTART/DTEND are in the still-open list.
            period = self.frames[self.stack.index("BANKTRANLIST")]
        raw_type = _value(acct.get("ACCTTYPE")).upper() or None
        if stmt.kind is StatementKind.CREDIT_CARD:
            account_type: AccountType | None = AccountType.CREDIT
        else:
            account_type = _ACCOUNT_TYPES.get(raw_type or "")
        stmt.info = StatementInfo(
            index=stmt.index,
            format="ofx",
            kind=stmt.kind,
            currency=code,
            account_type=account_type,
            account_type_raw=raw_type,
            bank_id=_value(acct.get("BANKID")) or None,
            branch_id=_value(acct.get("BRANCHID")) or None,
            account_id=_value(acct.get("ACCTID")) or None,
            org=_value(self.fi.get("ORG")) or None,
            fid=_value(self.fi.get("FID")) or None,
            start=_date_or_none(period.get("DTSTART")),
            end=_date_or_none(period.get("DTEND")),
        )
        self.out.append(stmt.info)

    def emit_line(self, stmt: _Statement, f: dict[str, str]) -> None:
        if stmt.info is None:
            self.emit_info(stmt)
        self.ordinal += 1
        when = f.get("DTPOSTED") or f.get("DTUSER")
        amount_text = f.get("TRNAMT")
        try:
            if not when or not when.strip():
                raise DateError("the transaction has no date (DTPOSTED)")
            day = parse_ofx_date(when)
            if not amount_text or not amount_text.strip():
                raise AmountError("the transaction has no amount (TRNAMT)")
            amount = parse_amount(amount_text, stmt.exponent, lone_is_decimal=True)
        except (DateError, AmountError) as exc:
            stmt.errors += 1
            self.out.append(LineError(stmt.index, self.ordinal, self.trn_line, str(exc)))
            return
        name = _value(f.get("NAME")) or _value(f.get("PAYEE.NAME")) or None
        memo = _value(f.get("MEMO")) or None
        raw_type = _value(f.get("TRNTYPE")).upper() or None
        stmt.lines += 1
        self.out.append(
            StatementLine(
                statement=stmt.index,
                ordinal=self.ordinal,
                line_no=self.trn_line,
                fitid=_value(f.get("FITID")) or None,
                date=day,
                amount=amount,
                currency=stmt.currency,
                description=describe(name, memo) or raw_type or "",
                memo=memo,
                name=name,
                raw_type=raw_type,
            )
        )

    def emit_end(self, stmt: _Statement) -> None:
        ledger, avail = stmt.ledger, stmt.available
        self.out.append(
            StatementEnd(
                index=stmt.index,
                lines=stmt.lines,
                errors=stmt.errors,
                ledger_balance=_amount_or_none(ledger.get("BALAMT"), stmt.exponent),
                ledger_date=_date_or_none(ledger.get("DTASOF")),
                available_balance=_amount_or_none(avail.get("BALAMT"), stmt.exponent),
                available_date=_date_or_none(avail.get("DTASOF")),
            )
        )

    def finish(self) -> None:
        if not self.closed:
            raise StatementError(
                "Truncated OFX: no closing </OFX>. The download was probably cut short; "
                "download the statement from your bank again"
            )
        if self.statements == 0:
            if self.status_message:
                raise StatementError(
                    f"The bank's file holds no statement, only an error: "
                    f"{self.status_message[:200]}"
                )
            if self.saw_investment:
                raise StatementError(
                    "This OFX file is an investment statement; only bank-account and "
                    "credit-card statements can be imported"
                )
            raise StatementError("This OFX file holds no bank-account or credit-card statement")


def _date_or_none(text: str | None) -> date | None:
    if not text or not text.strip():
        return None
    try:
        return parse_ofx_date(text)
    except DateError:
        return None


def _amount_or_none(text: str | None, exponent: int) -> int | None:
    if not text or not text.strip():
        return None
    try:
        return parse_amount(text, exponent, lone_is_decimal=True)
    except AmountError:
        return None


# --- the driver ---------------------------------------------------------------------------


def not_ofx_reason(head: bytes) -> str:
    """Why a file with no `<OFX>` element is not a statement, in words a person can act on."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n\x00")
    lower = stripped[:2048].lower()
    if not stripped:
        return "The file is empty"
    if stripped.startswith(b"%PDF"):
        return (
            "This is a PDF, not a statement file: download the statement from your bank as "
            "OFX (or CSV) instead"
        )
    if stripped.startswith(b"PK\x03\x04") or stripped.startswith(b"\xd0\xcf\x11\xe0"):
        return (
            "This is a spreadsheet or ZIP file: export the statement as OFX, or save the "
            "spreadsheet as CSV"
        )
    if b"<html" in lower or b"<!doctype html" in lower or b"<head" in lower:
        return (
            "This looks like an HTML page, not a bank statement (perhaps the bank's login or "
            "error page was saved): download the statement again as OFX"
        )
    if b"ofxheader" in lower:
        return "Truncated OFX: the header is there but the <OFX> element never starts"
    return "This is not an OFX file: no <OFX> element was found"


def _header_encoding(header: str, body_head: bytes) -> str:
    """The body's encoding from the OFX header (v1 ENCODING/CHARSET or v2 XML declaration),
    checked against the bytes: UTF-8 wins when the head has multi-byte UTF-8 sequences and
    decodes cleanly, whatever the header claims, and a declared UTF-8 that isn't falls back
    to Windows-1252 as the file goes on."""
    declared: str | None = None
    xml = _XML_ENCODING.search(header)
    if xml:
        declared = resolve_label(xml.group(1)) or UTF8
    else:
        fields = {k.upper(): v for k, v in _HEADER_FIELD.findall(header)}
        charset = resolve_label(fields.get("CHARSET"))
        encoding = (fields.get("ENCODING") or "").strip().upper().replace("-", "")
        if charset:
            declared = charset
        elif encoding in ("UTF8", "UNICODE"):
            declared = UTF8
    has_multibyte = any(b >= 0x80 for b in body_head)
    if has_multibyte and looks_utf8(body_head):
        return UTF8
    if declared in (None, UTF8):
        return UTF8 if not has_multibyte else CP1252
    return declared


def read_ofx(
    chunks: Iterable[bytes], *, currency_fallback: str | None = None
) -> Iterator[StatementEvent]:
    """Events of the OFX file whose bytes `chunks` yields, in order. Raises StatementError when
    the file as a whole can't be read: not OFX, truncated, no statement, no currency. It may
    do so after some lines have been yielded (a truncated file is only known at its end)."""
    it = iter(chunks)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 65536:
            break
    bom_encoding, bom_len = split_bom(head)
    if bom_encoding is not None and bom_encoding != UTF8:
        # UTF-16/32: decode the head first, then look for <OFX> in text.
        decoder = Decoder(bom_encoding, fallback=False)
        text = decoder.decode(head[bom_len:])
        match = _OFX_OPEN.search(text)
        if match is None:
            raise StatementError(not_ofx_reason(text.encode("utf-8", "replace")))
        header, body = text[: match.start()], text[match.start() :]
    else:
        raw = head[bom_len:]
        as_latin1 = raw.decode("latin-1")  # one char per byte: positions are byte offsets
        match = _OFX_OPEN.search(as_latin1)
        if match is None:
            raise StatementError(not_ofx_reason(raw))
        header = as_latin1[: match.start()]
        encoding = UTF8 if bom_encoding == UTF8 else _header_encoding(header, raw[match.start() :])
        decoder = Decoder(encoding)
        body = decoder.decode(raw[match.start() :])
    newline = "\n" if ("\n" in header or "\r" not in header) else "\r"
    reader = OfxReader(currency_fallback)
    yield from _tokens(reader, decoder, body, it, header.count(newline) + 1, newline)


def _tokens(
    reader: OfxReader,
    decoder: Decoder,
    buf: str,
    rest: Iterator[bytes],
    line: int,
    newline: str,
) -> Iterator[StatementEvent]:
    """The hot loop: chunk by chunk, token by token; everything here is local and flat."""
    out = reader.out
    findall = _TOKEN.findall
    leaves = _LEAF.findall
    eof = False
    while True:
        if eof:
            cut = len(buf)
        else:
            cut = buf.rfind("<")
            for opener, closer in (("<!--", "-->"), ("<![CDATA[", "]]>")):
                i = buf.rfind(opener, 0, cut)
                if i >= 0 and buf.find(closer, i) < 0:
                    cut = i
            if cut <= 0:
                if len(buf) > MAX_TOKEN_CHARS:
                    raise StatementError(
                        "This is not a valid OFX file: it has a value longer than 1 MB"
                    )
                chunk = next(rest, None)
                eof = chunk is None
                buf += decoder.decode(chunk or b"", final=eof)
                continue
        for block, tail, close, tag, text, other in findall(buf, 0, cut):
            if block:
                fields = dict(leaves(block))
                if "TRNAMT" in fields and "PAYEE" not in fields and "<!" not in block:
                    reader.transaction(fields, line)
                else:  # lower-case tags, a nested PAYEE (its NAME), CDATA, comments
                    line = _general(reader, "<STMTTRN>" + block + "</STMTTRN>", line, newline)
                    line -= block.count(newline)
                line += block.count(newline) + tail.count(newline)
            else:
                line = _token(reader, close, tag, text, other, line, newline)
            if reader.closed:
                break
        if out:
            yield from out
            out.clear()
        if reader.closed or eof:
            reader.finish()
            return
        buf = buf[cut:]
        chunk = next(rest, None)
        eof = chunk is None
        buf += decoder.decode(chunk or b"", final=eof)


def _general(reader: OfxReader, text: str, line: int, newline: str) -> int:
    """Feed `text` token by token, without the fast path; returns the line after it."""
    for close, tag, value, other in _GENERAL_TOKEN.findall(text):
        line = _token(reader, close, tag, value, other, line, newline)
    return line


def _token(
    reader: OfxReader, close: str, tag: str, text: str, other: str, line: int, newline: str
) -> int:
    """One general token; returns the line after it."""
    frames = reader.frames
    if tag:
        tag = tag.upper()
        if close:
            if tag in _KNOWN:
                reader.close(tag)
            reader.last_leaf = None
        elif tag in _KNOWN:
            reader.open(tag, line)
            reader.last_leaf = None
        elif frames:
            frames[-1][tag] = text
            reader.last_leaf = tag
        return line + text.count(newline) if newline in text else line
    if other.startswith("![CDATA[") and reader.last_leaf is not None and frames:
        cdata = _CDATA.match(other)
        if cdata is not None:
            frames[-1][reader.last_leaf] = cdata.group(1)
    return line + other.count(newline)
