"""Whatever bytes arrive, the parsers raise only StatementError or yield LineErrors."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valorize.domain.statements import (
    LineError,
    StatementEnd,
    StatementError,
    StatementInfo,
    StatementLine,
    parse_statement,
    sniff_format,
)
from valorize.domain.statements.amounts import MAX_MINOR_UNITS

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
SEEDS = sorted(p.read_bytes() for p in FIX.iterdir() if p.suffix in (".ofx", ".csv"))
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS = st.sampled_from([None, "ofx", "csv"])


def run(data: bytes, fmt: str | None, chunk_size: int = 65536) -> None:
    """Parse to the end; anything but StatementError escaping fails the test."""
    statements: set[int] = set()
    try:
        events = parse_statement(io.BytesIO(data), fmt, chunk_size=chunk_size)  # type: ignore[arg-type]
        for event in events:
            if isinstance(event, StatementInfo):
                statements.add(event.index)
            elif isinstance(event, StatementLine):
                assert event.statement in statements
                assert type(event.amount) is int and abs(event.amount) < MAX_MINOR_UNITS
                assert event.ordinal >= 1 and event.line_no >= 1
            elif isinstance(event, LineError):
                assert event.reason
            else:
                assert isinstance(event, StatementEnd)
    except StatementError as exc:
        assert exc.reason and "Traceback" not in exc.reason


@FUZZ
@given(data=st.binary(max_size=2000), fmt=FORMATS)
def test_random_bytes(data: bytes, fmt: str | None) -> None:
    sniff_format(data)
    run(data, fmt)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.binary(max_size=8), st.integers(0, 8)),
        min_size=1,
        max_size=6,
    ),
    fmt=FORMATS,
    chunk_size=st.sampled_from([3, 64, 65536]),
)
def test_mutated_statements(
    seed: bytes, edits: list[tuple[int, bytes, int]], fmt: str | None, chunk_size: int
) -> None:
    """Real statements with bytes inserted, deleted or replaced: the worst a half-broken
    download or a hand-edited file can do."""
    data = bytearray(seed)
    for position, insert, delete in edits:
        at = position % (len(data) + 1)
        data[at : at + delete] = insert
    run(bytes(data), fmt, chunk_size)


ofx_pieces = st.sampled_from(
    [
        b"<OFX>",
        b"</OFX>",
        b"<STMTRS>",
        b"</STMTRS>",
        b"<CCSTMTRS>",
        b"<STMTTRN>",
        b"</STMTTRN>",
        b"<BANKTRANLIST>",
        b"</BANKTRANLIST>",
        b"<TRNAMT>",
        b"<DTPOSTED>",
        b"<CURDEF>",
        b"<NAME>",
        b"<MEMO>",
        b"<FITID>",
        b"<LEDGERBAL>",
        b"<BALAMT>",
        b"<PAYEE>",
        b"</PAYEE>",
        b"<![CDATA[",
        b"]]>",
        b"<!--",
        b"-->",
        b"<?",
        b"BRL",
        b"JPY",
        b"20250115120000[-3:BRT]",
        b"2025-13-45",
        b"-1.234,56",
        b"(12.00)",
        b"&amp;",
        b"&#99999999;",
        b"\r\n",
        b"\xff",
        b"\xc3",
    ]
)


@FUZZ
@given(pieces=st.lists(ofx_pieces, max_size=60), chunk_size=st.sampled_from([2, 65536]))
def test_ofx_token_soup(pieces: list[bytes], chunk_size: int) -> None:
    run(b"OFXHEADER:100\n" + b"".join(pieces), "ofx", chunk_size)
