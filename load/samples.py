"""Synthetic statements for benchmarks: a realistic OFX or CSV of any size, built in memory.

The ingest benchmark (../shared/spec/TARGETS.md #4: a 50,000-line statement parsed,
classified and staged with flat memory) and the parse-rate micro-benchmark
(`measure_parse_rate`, run by `load/statements.py`) both use these; so do the parser tests.
Deterministic for a given seed; pure (no I/O).
"""

from __future__ import annotations

import gc
import io
import random
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Literal

_MERCHANTS = (
    "SUPERMERCADO EXTRA",
    "PADARIA SÃO JOSÉ",
    "POSTO SHELL",
    "FARMÁCIA DROGASIL",
    "UBER *TRIP",
    "IFOOD *RESTAURANTE",
    "NETFLIX.COM",
    "CAFÉ & CIA LTDA",
    "MAGAZINE LUIZA",
    "AMAZON MARKETPLACE",
    "Pix enviado - MARIA SOUZA",
    "Pix recebido - JOÃO DA SILVA",
    "Pagamento de boleto",
    "Tarifa pacote serviços",
)
_TYPES = ("DEBIT", "DEBIT", "DEBIT", "CREDIT", "PAYMENT", "XFER", "POS", "FEE", "DEP", "OTHER")

_OFX_HEADER = (
    "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\n"
    "CHARSET:1252\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
)


@dataclass(frozen=True)
class _Txn:
    n: int
    day: date
    cents: int
    kind: str
    text: str


def _transactions(lines: int, seed: int) -> Iterator[_Txn]:
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    for n in range(lines):
        cents = rng.randint(1, 500_000)
        kind = rng.choice(_TYPES)
        if kind not in ("CREDIT", "DEP"):
            cents = -cents
        day = start + timedelta(days=n * 730 // max(lines, 1))
        yield _Txn(n, day, cents, kind, rng.choice(_MERCHANTS))


def _dec(cents: int, sep: str = ".") -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}{sep}{frac:02d}"


def ofx_sample(
    lines: int = 50_000,
    *,
    statements: int = 1,
    xml: bool = False,
    seed: int = 0,
) -> bytes:
    """An OFX 1.02 SGML (default: unclosed leaf tags, CRLF, CHARSET 1252, `[-3:BRT]` dates) or
    OFX 2.2 XML (UTF-8) bank statement with `lines` transactions split over `statements`
    statements. Each transaction has TRNTYPE, DTPOSTED, TRNAMT, FITID and NAME, MEMO or both."""
    out = io.StringIO()
    if xml:
        out.write(
            '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\r\n'
            '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" '
            'NEWFILEUID="NONE"?>\r\n'
        )
    else:
        out.write(_OFX_HEADER)

    def leaf(tag: str, value: str) -> str:
        if xml:
            value = value.replace("&", "&amp;")
            return f"<{tag}>{value}</{tag}>\r\n"
        return f"<{tag}>{value}\r\n"

    out.write("<OFX>\r\n<SIGNONMSGSRSV1>\r\n<SONRS>\r\n<STATUS>\r\n")
    out.write(leaf("CODE", "0") + leaf("SEVERITY", "INFO"))
    out.write("</STATUS>\r\n" + leaf("DTSERVER", "20260101083000[-3:BRT]"))
    out.write(leaf("LANGUAGE", "POR") + "<FI>\r\n" + leaf("ORG", "Banco Exemplo"))
    out.write(leaf("FID", "999") + "</FI>\r\n</SONRS>\r\n</SIGNONMSGSRSV1>\r\n<BANKMSGSRSV1>\r\n")
    per = -(-lines // max(statements, 1))
    txns = _transactions(lines, seed)
    for s in range(max(statements, 1)):
        chunk = [t for _, t in zip(range(per), txns, strict=False)]
        out.write(f"<STMTTRNRS>\r\n{leaf('TRNUID', str(s + 1))}<STATUS>\r\n")
        out.write(leaf("CODE", "0") + leaf("SEVERITY", "INFO") + "</STATUS>\r\n<STMTRS>\r\n")
        out.write(leaf("CURDEF", "BRL") + "<BANKACCTFROM>\r\n" + leaf("BANKID", "999"))
        out.write(leaf("BRANCHID", "0001") + leaf("ACCTID", f"{12345 + s}-6"))
        out.write(leaf("ACCTTYPE", "CHECKING") + "</BANKACCTFROM>\r\n<BANKTRANLIST>\r\n")
        first = chunk[0].day if chunk else date(2024, 1, 1)
        last = chunk[-1].day if chunk else date(2024, 1, 1)
        out.write(leaf("DTSTART", f"{first:%Y%m%d}000000[-3:BRT]"))
        out.write(leaf("DTEND", f"{last:%Y%m%d}235959[-3:BRT]"))
        total = 0
        for t in chunk:
            total += t.cents
            out.write("<STMTTRN>\r\n")
            out.write(leaf("TRNTYPE", t.kind))
            out.write(leaf("DTPOSTED", f"{t.day:%Y%m%d}{10 + t.n % 12:02d}0000[-3:BRT]"))
            out.write(leaf("TRNAMT", _dec(t.cents)))
            out.write(leaf("FITID", f"{t.day:%Y%m%d}{t.n:08d}"))
            if t.n % 3 == 0:
                out.write(leaf("NAME", t.text[:32]))
            elif t.n % 3 == 1:
                out.write(leaf("MEMO", t.text))
            else:
                out.write(leaf("NAME", t.text[:32]) + leaf("MEMO", f"{t.text} {t.n}"))
            out.write("</STMTTRN>\r\n")
        out.write("</BANKTRANLIST>\r\n<LEDGERBAL>\r\n" + leaf("BALAMT", _dec(total)))
        out.write(leaf("DTASOF", f"{last:%Y%m%d}235959[-3:BRT]"))
        out.write("</LEDGERBAL>\r\n</STMTRS>\r\n</STMTTRNRS>\r\n")
    out.write("</BANKMSGSRSV1>\r\n</OFX>\r\n")
    return out.getvalue().encode("utf-8" if xml else "cp1252")


def csv_sample(
    lines: int = 50_000,
    *,
    layout: Literal["nubank_account", "inter", "generic"] = "nubank_account",
    seed: int = 0,
) -> bytes:
    """A CSV export with `lines` rows: Nubank's account layout (UTF-8, ','), Banco Inter's
    (preamble, ';', '1.234,56', UTF-8) or a generic English one."""
    out = io.StringIO()
    if layout == "nubank_account":
        out.write("Data,Valor,Identificador,Descrição\n")
        for t in _transactions(lines, seed):
            out.write(f"{t.day:%d/%m/%Y},{_dec(t.cents)},{seed:08x}-{t.n:012x},{t.text}\n")
    elif layout == "inter":
        out.write("Extrato Conta Corrente \r\nConta ;12345678\r\n")
        out.write("Período ;01/01/2024 a 31/12/2025\r\nSaldo ;0,00\r\n\r\n")
        out.write("Data Lançamento;Histórico;Descrição;Valor;Saldo\r\n")
        balance = 0
        for t in _transactions(lines, seed):
            balance += t.cents
            out.write(
                f"{t.day:%d/%m/%Y};{t.kind.title()};{t.text};{_dec(t.cents, ',')};"
                f"{_dec(balance, ',')}\r\n"
            )
    else:
        out.write("Date,Description,Amount\n")
        for t in _transactions(lines, seed):
            out.write(f'{t.day:%Y-%m-%d},"{t.text}",{_dec(t.cents)}\n')
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class ParseRate:
    format: str
    bytes: int
    lines: int
    errors: int
    seconds: float
    lines_per_s: float
    peak_traced_bytes: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def measure_parse_rate(
    data: bytes,
    *,
    format: Literal["ofx", "csv"] | None = None,
    repeat: int = 3,
    chunk_size: int | None = None,
) -> ParseRate:
    """Parse `data` `repeat` times and keep the fastest run; then once more under tracemalloc
    for the peak of Python allocations while parsing (the input buffer itself is allocated
    before tracing starts, so it is not counted: what remains is what the parser holds)."""
    from valorize.domain.statements.api import parse_statement
    from valorize.domain.statements.events import LineError, StatementLine

    def run() -> tuple[int, int]:
        lines = errors = 0
        stream = io.BytesIO(data)
        events = (
            parse_statement(stream, format=format)
            if chunk_size is None
            else parse_statement(stream, format=format, chunk_size=chunk_size)
        )
        for event in events:
            if isinstance(event, StatementLine):
                lines += 1
            elif isinstance(event, LineError):
                errors += 1
        return lines, errors

    best = float("inf")
    lines = errors = 0
    for _ in range(max(repeat, 1)):
        gc.collect()
        t0 = time.perf_counter()
        lines, errors = run()
        best = min(best, time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return ParseRate(
        format=format or "sniffed",
        bytes=len(data),
        lines=lines,
        errors=errors,
        seconds=best,
        lines_per_s=lines / best if best > 0 else float("inf"),
        peak_traced_bytes=peak,
    )
