"""Evaluate ofxtools and ofxparse (and our own parser) against the OFX quirks real banks produce.

Evidence for shared/src/valorize/domain/statements/DECISION.md. Not part of the test suite and
not a runtime dependency: run it in a throw-away virtualenv that has the two libraries, e.g.

    uv venv /tmp/ofxeval && uv pip install --python /tmp/ofxeval/bin/python \
        ofxtools==1.1.1 ofxparse==0.21 pydantic iso4217
    /tmp/ofxeval/bin/python load/ofx_libraries.py [--lines 50000] [--out load/results]

For every quirk it parses a fixture from tests/fixtures/statements/ with each library and checks
what came out (amounts in cents, calendar dates in the statement's own offset, descriptions,
FITIDs, statement count). Then, in a fresh subprocess per library (so peaks don't mix), it parses
a 50,000-line OFX 1.02 SGML statement from load.samples and reports the
wall time, the tracemalloc peak and the process's peak RSS growth.

Writes <out>/ofx_libraries.json and <out>/ofx_libraries.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "statements"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "shared" / "src"))

# A normalised statement: {"kind", "account", "currency", "lines": [(fitid, date, cents, text)]}
Result = list[dict[str, Any]]


def cents(value: Any) -> int:
    d = Decimal(str(value)) * 100
    if d != d.to_integral_value():
        raise ValueError(f"not whole cents: {value}")
    return int(d)


# --- adapters -------------------------------------------------------------------------------


def run_ofxtools(data: bytes) -> Result:
    from ofxtools.Parser import OFXTree

    tree = OFXTree()
    tree.parse(io.BytesIO(data))
    ofx = tree.convert()
    out: Result = []
    for stmt in ofx.statements:
        acct = stmt.account
        kind = "credit_card" if type(stmt).__name__ == "CCSTMTRS" else "bank"
        lines = []
        for t in stmt.banktranlist or []:
            text = " / ".join(x for x in (t.name, t.memo) if x)
            # ofxtools returns an aware UTC datetime: .date() is the UTC calendar date.
            lines.append((t.fitid, t.dtposted.date(), cents(t.trnamt), text))
        out.append({"kind": kind, "account": acct.acctid, "currency": stmt.curdef, "lines": lines})
    return out


def run_ofxparse(data: bytes) -> Result:
    import ofxparse

    ofx = ofxparse.OfxParser.parse(io.BytesIO(data))
    out: Result = []
    for acct in ofx.accounts:
        st = acct.statement
        kind = "credit_card" if acct.type == ofxparse.AccountType.CreditCard else "bank"
        lines = []
        for t in st.transactions:
            text = " / ".join(x for x in (t.payee, t.memo) if x)
            # ofxparse subtracts the offset and returns a naive UTC datetime.
            lines.append((t.id or None, t.date.date(), cents(t.amount), text))
        out.append(
            {"kind": kind, "account": acct.account_id, "currency": st.currency, "lines": lines}
        )
    return out


def run_ours(data: bytes) -> Result:
    from valorize.domain.statements import StatementInfo, StatementLine, parse_statement

    out: Result = []
    for ev in parse_statement(io.BytesIO(data), format="ofx"):
        if isinstance(ev, StatementInfo):
            out.append(
                {
                    "kind": ev.kind.value,
                    "account": ev.account_id,
                    "currency": ev.currency,
                    "lines": [],
                }
            )
        elif isinstance(ev, StatementLine):
            out[-1]["lines"].append((ev.fitid, ev.date, ev.amount, ev.description))
    return out


LIBRARIES: dict[str, Callable[[bytes], Result]] = {
    "ofxtools 1.1.1": run_ofxtools,
    "ofxparse 0.21": run_ofxparse,
    "ours": run_ours,
}

# --- quirks ---------------------------------------------------------------------------------


def amounts(r: Result) -> list[int]:
    return [ln[2] for s in r for ln in s["lines"]]


def dates(r: Result) -> list[date]:
    return [ln[1] for s in r for ln in s["lines"]]


def texts(r: Result) -> list[str]:
    return [ln[3] for s in r for ln in s["lines"]]


def check_sgml(r: Result) -> str | None:
    want = [500000, -15035, -28990, -120000, -3500]
    return None if amounts(r) == want else f"amounts {amounts(r)}"


def check_v2(r: Result) -> str | None:
    t = texts(r)
    if amounts(r) != [1234, 50000, -10000]:
        return f"amounts {amounts(r)}"
    if not any("Depósito & aplicação" in x for x in t):
        return f"&amp;: {t}"
    if not any("Resgate <automático> — app" in x for x in t):
        return f"&lt; or &#8212;: {t[-1]!r}"
    return None


def check_cp1252(r: Result) -> str | None:
    t = texts(r)
    if not r or r[0]["kind"] != "credit_card":
        return f"statements {[s['kind'] for s in r]}"
    if not any("PADARIA SÃO JOSÉ" in x for x in t):
        return f"accents: {t[:1]}"
    if not any("CAFÉ & CIA" in x for x in t):
        return f"raw '&': {t[1:2]}"
    return None


def check_multi(r: Result) -> str | None:
    got = [(s["kind"], s["account"], len(s["lines"])) for s in r]
    want = [("bank", "1111-1", 2), ("bank", "2222-2", 1), ("credit_card", "4111XXXXXXXX1111", 1)]
    return None if got == want else f"statements {got}"


def check_tz(r: Result) -> str | None:
    d = dates(r)
    want = [date(2025, 1, 15)] * 7
    return None if d == want else "dates " + ", ".join(x.isoformat() for x in d)


def check_comma(r: Result) -> str | None:
    return None if amounts(r) == [-7890, 123456, -5] else f"amounts {amounts(r)}"


def check_name_only(r: Result) -> str | None:
    t = texts(r)
    return None if t and "POSTO SHELL" in t[0] else f"descriptions {t}"


def check_missing_fitid(r: Result) -> str | None:
    lines = [ln for s in r for ln in s["lines"]]
    if len(lines) != 3:
        return f"{len(lines)} of 3 lines"
    return None if amounts(r) == [-5000, 7500, -500] else f"amounts {amounts(r)}"


def check_truncated(r: Result) -> str | None:
    return f"accepted silently with {len(amounts(r))} lines"


def check_html(r: Result) -> str | None:
    return f"accepted an HTML page as {len(r)} statements"


def fixture(name: str) -> Callable[[], bytes]:
    return lambda: (FIX / name).read_bytes()


def variant(name: str, *edits: tuple[bytes, bytes]) -> Callable[[], bytes]:
    """A fixture with one quirk injected, so each row of the table isolates one thing."""

    def build() -> bytes:
        data = (FIX / name).read_bytes()
        for old, new in edits:
            assert old in data, old
            data = data.replace(old, new, 1)
        return data

    return build


def check_v2_ascii(r: Result) -> str | None:
    return None if amounts(r) == [1234, 50000, -10000] else f"amounts {amounts(r)}"


def check_one_missing(r: Result) -> str | None:
    lines = [ln for s in r for ln in s["lines"]]
    if len(lines) != 5:
        return f"{len(lines)} of 5 lines"
    return None if lines[1][0] is None else f"fitid {lines[1][0]!r}"


def check_five(r: Result) -> str | None:
    return check_sgml(r)


def check_mislabelled(r: Result) -> str | None:
    t = texts(r)
    return None if any("PADARIA SÃO JOSÉ" in x for x in t) else f"accents: {t[:1]}"


V2_NO_BOM = variant(
    "bank_v2.ofx",
    (b"\xef\xbb\xbf", b""),
    ("Econômica".encode(), b"Economica"),
    ("poupança".encode(), b"poupanca"),
    ("Crédito".encode(), b"Credito"),
    ("Depósito &amp; aplicação".encode(), b"Deposito &amp; aplicacao"),
    ("automático".encode(), b"automatico"),
)

QUIRKS: list[tuple[str, Callable[[], bytes], Callable[[Result], str | None], bool]] = [
    # (quirk, input, check, an exception is the right answer)
    (
        "OFX 1.02 SGML, unclosed leaf tags, TRNTYPE PAYMENT/XFER/FEE",
        fixture("bank_sgml.ofx"),
        check_sgml,
        False,
    ),
    ("OFX 2.2 XML, ASCII only, no BOM", V2_NO_BOM, check_v2_ascii, False),
    (
        "OFX 2.2 XML, UTF-8 accents, &amp; &lt; &#8212;",
        variant("bank_v2.ofx", (b"\xef\xbb\xbf", b"")),
        check_v2,
        False,
    ),
    ("the same with a UTF-8 BOM", fixture("bank_v2.ofx"), check_v2, False),
    (
        "credit card (CCSTMTRS), CHARSET:1252 accents, raw '&'",
        fixture("creditcard_cp1252.ofx"),
        check_cp1252,
        False,
    ),
    (
        "header says UTF-8, body is cp1252",
        variant(
            "creditcard_cp1252.ofx",
            (b"ENCODING:USASCII\r\nCHARSET:1252", b"ENCODING:UTF-8\r\nCHARSET:NONE"),
        ),
        check_mislabelled,
        False,
    ),
    ("several statements (2 bank + 1 card)", fixture("multi_statement.ofx"), check_multi, False),
    (
        "TZ offsets: calendar date in the file's offset",
        fixture("tz_offsets.ofx"),
        check_tz,
        False,
    ),
    ("comma decimals (-78,90)", fixture("comma_decimals.ofx"), check_comma, False),
    ("NAME without MEMO", fixture("name_without_memo.ofx"), check_name_only, False),
    (
        "one STMTTRN without FITID",
        variant("bank_sgml.ofx", (b"<FITID>202501060001\r\n", b"")),
        check_one_missing,
        False,
    ),
    (
        "empty leaf element (<NAME> with no value)",
        variant("bank_sgml.ofx", (b"<MEMO>Pagto conta luz", b"<NAME>\r\n<MEMO>Pagto conta luz")),
        check_five,
        False,
    ),
    (
        "non-standard TRNTYPE (PIX)",
        variant("bank_sgml.ofx", (b"<TRNTYPE>PAYMENT", b"<TRNTYPE>PIX")),
        check_five,
        False,
    ),
    (
        "missing FITID + TRNTYPE PIX/blank + empty FITID",
        fixture("missing_fitid.ofx"),
        check_missing_fitid,
        False,
    ),
    (
        "no LEDGERBAL (optional in practice)",
        variant(
            "bank_sgml.ofx",
            (
                b"<LEDGERBAL>\r\n<BALAMT>3324.75\r\n<DTASOF>20250131235959[-3:BRT]\r\n"
                b"</LEDGERBAL>\r\n",
                b"",
            ),
        ),
        check_sgml,
        False,
    ),
    ("truncated file (no </OFX>)", fixture("truncated.ofx"), check_truncated, True),
    ("HTML page instead of OFX", fixture("html_page.ofx"), check_html, True),
    ("empty file", fixture("empty.ofx"), check_html, True),
]


def evaluate() -> dict[str, Any]:
    table: dict[str, dict[str, str]] = {}
    for quirk, source, check, error_expected in QUIRKS:
        data = source()
        row: dict[str, str] = {}
        for name, fn in LIBRARIES.items():
            try:
                result = fn(data)
            except Exception as exc:  # noqa: BLE001 - we report whatever the library raised
                text = re.sub(r" at 0x[0-9a-f]+", "", str(exc))  # object addresses vary
                msg = f"{type(exc).__name__}: {text[:110]}"
                row[name] = ("ok (rejected) " if error_expected else "FAIL ") + msg
                continue
            problem = check(result)
            row[name] = "ok" if problem is None else f"FAIL {problem}"
        table[quirk] = row
    return table


# --- speed and memory on a 50,000-line statement --------------------------------------------


def count_ofxtools(stream: BinaryIO) -> int:
    from ofxtools.Parser import OFXTree

    tree = OFXTree()
    tree.parse(stream)
    return sum(len(st.banktranlist or []) for st in tree.convert().statements)


def count_ofxparse(stream: BinaryIO) -> int:
    import ofxparse

    ofx = ofxparse.OfxParser.parse(stream)
    return sum(len(acct.statement.transactions) for acct in ofx.accounts)


def count_ours(stream: BinaryIO) -> int:
    from valorize.domain.statements import StatementLine, parse_statement

    return sum(isinstance(ev, StatementLine) for ev in parse_statement(stream))


COUNTERS: dict[str, Callable[[BinaryIO], int]] = {
    "ofxtools 1.1.1": count_ofxtools,
    "ofxparse 0.21": count_ofxparse,
    "ours": count_ours,
}

BENCH = """
import json, resource, sys, time, tracemalloc, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {src!r})
sys.path.insert(0, {load!r})
import ofx_libraries as ev
count = ev.COUNTERS[{lib!r}]
with open(ev.FIX / "ofx_fake.ofx", "rb") as warm:  # imports, before measuring
    count(warm)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with open({path!r}, "rb") as stream:
    n = count(stream)
wall = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
with open({path!r}, "rb") as stream:
    count(stream)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({{"lines": n, "seconds": wall, "rss_growth_kib": rss1 - rss0,
                  "tracemalloc_peak_bytes": peak}}))
"""


def bench(lines: int) -> dict[str, Any]:
    """Each library in a fresh process that streams the same file from disk (peaks don't mix;
    the process's peak RSS before parsing is the warmed-up interpreter)."""
    from load.samples import ofx_sample

    data = ofx_sample(lines)
    out: dict[str, Any] = {"input_bytes": len(data)}
    with tempfile.NamedTemporaryFile(suffix=".ofx") as f:
        f.write(data)
        f.flush()
        for name in COUNTERS:
            code = BENCH.format(
                src=str(ROOT / "shared" / "src"), load=str(ROOT / "load"), lib=name, path=f.name
            )
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            if proc.returncode != 0:
                out[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
                continue
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as md

    got = {}
    for pkg in ("ofxtools", "ofxparse", "beautifulsoup4", "lxml"):
        with contextlib.suppress(md.PackageNotFoundError):
            got[pkg] = md.version(pkg)
    return got


def report(quirks: dict[str, dict[str, str]], speed: dict[str, Any], lines: int) -> str:
    libs = list(LIBRARIES)
    md = ["# OFX libraries against real-world quirks", ""]
    md.append(f"Python {platform.python_version()}, {versions()}, {time.strftime('%Y-%m-%d')}.")
    md += ["", "| quirk | " + " | ".join(libs) + " |", "|---" * (len(libs) + 1) + "|"]
    for quirk, row in quirks.items():
        cells = [row[lib].replace("|", "\\|").replace("\n", " ") for lib in libs]
        md.append(f"| {quirk} | " + " | ".join(cells) + " |")
    md += ["", f"## {lines:,}-line OFX 1.02 SGML statement", ""]
    md.append("| library | lines | seconds | lines/s | tracemalloc peak MiB | RSS growth MiB |")
    md.append("|---|---|---|---|---|---|")
    for lib, s in speed.items():
        if lib == "input_bytes":
            continue
        if "error" in s:
            md.append(f"| {lib} | error: {s['error']} | | | | |")
            continue
        md.append(
            f"| {lib} | {s['lines']} | {s['seconds']:.2f} | {s['lines'] / s['seconds']:,.0f} | "
            f"{s['tracemalloc_peak_bytes'] / 2**20:.1f} | {s['rss_growth_kib'] / 1024:.1f} |"
        )
    md.append("")
    md.append(
        f"Input: {speed['input_bytes'] / 2**20:.1f} MiB, streamed from a file by a fresh "
        "process per library (RSS growth: the peak over the warmed-up interpreter; tracemalloc: "
        "the peak of Python allocations while parsing)."
    )
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=ROOT / "load" / "results")
    ap.add_argument("--no-bench", action="store_true")
    args = ap.parse_args()
    quirks = evaluate()
    speed = {} if args.no_bench else bench(args.lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ofx_libraries.json").write_text(
        json.dumps({"quirks": quirks, "bench": speed, "versions": versions()}, indent=2)
    )
    text = report(quirks, speed, args.lines) if speed else json.dumps(quirks, indent=2)
    (args.out / "ofx_libraries.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
