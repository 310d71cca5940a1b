"""The OFX reader on realistic fixtures and the quirks banks send (tests/fixtures/statements)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from load.samples import ofx_sample
from valorize.domain.model import AccountType
from valorize.domain.statements import (
    LineError,
    StatementEnd,
    StatementError,
    StatementEvent,
    StatementInfo,
    StatementKind,
    StatementLine,
    parse_ofx_date,
    parse_ofx_datetime,
    parse_statement,
    sniff_format,
)
from valorize.domain.statements.dates import DateError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"


def parse(data: bytes, **kwargs: object) -> list[StatementEvent]:
    return list(parse_statement(io.BytesIO(data), **kwargs))  # type: ignore[arg-type]


def fixture(name: str, **kwargs: object) -> list[StatementEvent]:
    return parse((FIX / name).read_bytes(), **kwargs)


def lines(events: list[StatementEvent]) -> list[StatementLine]:
    return [e for e in events if isinstance(e, StatementLine)]


def infos(events: list[StatementEvent]) -> list[StatementInfo]:
    return [e for e in events if isinstance(e, StatementInfo)]


def ends(events: list[StatementEvent]) -> list[StatementEnd]:
    return [e for e in events if isinstance(e, StatementEnd)]


def error_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(StatementError) as caught:
        parse(data, **kwargs)
    return caught.value.reason


# --- fixtures -------------------------------------------------------------------------------


def test_original_ofx_fake_parses_as_the_original_expected() -> None:
    """../shared/spec/ORIGINAL.md §4.3: the original's unit-test file and its expected values."""
    events = fixture("ofx_fake.ofx")
    [info] = infos(events)
    assert (info.start, info.end) == (date(2025, 1, 1), date(2025, 1, 31))
    assert info.account_type is AccountType.CHECKING
    assert (info.fid, info.bank_id, info.branch_id) == ("123", "0000", "1")
    assert (info.account_id, info.currency, info.org) == ("12345-6", "BRL", "Test Bank")
    got = [(ln.fitid, ln.date, ln.amount, ln.description) for ln in lines(events)]
    assert got == [
        ("1", date(2025, 1, 15), 123456, "Test Credit Transaction"),
        ("2", date(2025, 1, 16), -7890, "Test Debit Transaction"),
    ]
    [end] = ends(events)
    assert (end.ledger_balance, end.ledger_date, end.lines, end.errors) == (
        115566,
        date(2025, 1, 31),
        2,
        0,
    )


def test_sgml_bank_statement_with_unclosed_tags_and_any_trntype() -> None:
    events = fixture("bank_sgml.ofx")
    assert [type(e).__name__ for e in events] == [
        "StatementInfo",
        *["StatementLine"] * 5,
        "StatementEnd",
    ]
    [info] = infos(events)
    assert info.kind is StatementKind.BANK and info.format == "ofx"
    assert (info.org, info.bank_id, info.branch_id, info.account_id) == (
        "Banco do Brasil",
        "001",
        "1234-5",
        "98765-4",
    )
    got = lines(events)
    assert [ln.raw_type for ln in got] == ["CREDIT", "DEBIT", "PAYMENT", "XFER", "FEE"]
    assert [ln.amount for ln in got] == [500000, -15035, -28990, -120000, -3500]
    assert [ln.ordinal for ln in got] == [1, 2, 3, 4, 5]
    assert [ln.line_no for ln in got] == [44, 52, 60, 67, 74]  # the <STMTTRN> lines
    assert got[1].description == "Compra com cartao - SUPERMERCADO EXTRA"  # NAME inside MEMO
    assert (got[1].name, got[1].memo) == ("SUPERMERCADO EXTRA", got[1].description)
    [end] = ends(events)
    assert (end.ledger_balance, end.available_balance) == (332475, 332475)


def test_ofx2_xml_with_bom_entities_and_accents() -> None:
    events = fixture("bank_v2.ofx")
    [info] = infos(events)
    assert info.org == "Caixa Econômica Federal"
    assert info.account_type is AccountType.SAVINGS
    got = lines(events)
    assert [ln.description for ln in got] == [
        "Rendimento poupança - Crédito de juros",
        "Depósito & aplicação",
        "Resgate <automático> — app",
    ]
    assert [ln.date for ln in got] == [date(2025, 2, 3), date(2025, 2, 10), date(2025, 2, 20)]


def test_credit_card_statement_in_cp1252_with_raw_ampersand() -> None:
    events = fixture("creditcard_cp1252.ofx")
    [info] = infos(events)
    assert info.kind is StatementKind.CREDIT_CARD
    assert info.account_type is AccountType.CREDIT
    assert (info.account_id, info.org, info.bank_id) == ("5502XXXXXXXX1234", "Itaú Unibanco", None)
    got = lines(events)
    assert [ln.description for ln in got] == [
        "PADARIA SÃO JOSÉ",
        "CAFÉ & CIA LTDA",
        "MAGAZINE LUIZA 02/10",
        "PAGAMENTO EFETUADO - Pagamento da fatura \u2013 obrigado",
    ]
    assert [ln.amount for ln in got] == [-4250, -1800, -32999, 150000]
    assert ends(events)[0].ledger_balance == -189049


def test_several_statements_in_one_file() -> None:
    events = fixture("multi_statement.ofx")
    got = [(i.index, i.kind, i.account_id, i.account_type) for i in infos(events)]
    assert got == [
        (0, StatementKind.BANK, "1111-1", AccountType.CHECKING),
        (1, StatementKind.BANK, "2222-2", AccountType.SAVINGS),
        (2, StatementKind.CREDIT_CARD, "4111XXXXXXXX1111", AccountType.CREDIT),
    ]
    assert [(ln.statement, ln.fitid) for ln in lines(events)] == [
        (0, "A1"),
        (0, "A2"),
        (1, "B1"),
        (2, "C1"),
    ]
    assert [(e.index, e.lines, e.ledger_balance) for e in ends(events)] == [
        (0, 2, 27500),
        (1, 1, 100000),
        (2, 1, -5990),
    ]
    # Events come in file order: each statement's info, lines, end.
    order = [(type(e).__name__[9:] or "Line", getattr(e, "index", None)) for e in events]
    assert order[0] == ("Info", 0) and order[3] == ("End", 0) and order[4] == ("Info", 1)


def test_time_zone_offsets_give_the_calendar_date_in_that_offset() -> None:
    got = lines(fixture("tz_offsets.ofx"))
    assert {ln.date for ln in got} == {date(2025, 1, 15)}
    assert len(got) == 7


def test_comma_decimal_amounts_and_balance() -> None:
    events = fixture("comma_decimals.ofx")
    assert [ln.amount for ln in lines(events)] == [-7890, 123456, -5]
    assert ends(events)[0].ledger_balance == 115561


def test_name_is_used_when_memo_is_empty() -> None:
    got = lines(fixture("name_without_memo.ofx"))
    assert [ln.description for ln in got] == [
        "POSTO SHELL",
        "ESTACIONAMENTO CENTRO",
        "AMAZON MARKETPLACE - Parcela 1/3",
        "IFOOD *RESTAURANTE SABOR BRASIL",  # a truncated NAME repeated in MEMO: MEMO only
    ]


def test_missing_or_empty_fitid_and_odd_trntypes_are_accepted() -> None:
    got = lines(fixture("missing_fitid.ofx"))
    assert [(ln.fitid, ln.raw_type, ln.amount) for ln in got] == [
        (None, "PIX", -5000),
        (None, None, 7500),
        ("M3", "OTHER", -500),
    ]


def test_truncated_file_fails_after_the_lines_it_had() -> None:
    events: list[StatementEvent] = []
    with pytest.raises(StatementError, match="Truncated OFX: no closing </OFX>"):
        events.extend(parse_statement(io.BytesIO((FIX / "truncated.ofx").read_bytes())))
    assert len(lines(events)) == 2  # a consumer must discard them: the import failed


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.ofx", "The file is empty"),
        ("html_page.ofx", "This looks like an HTML page, not a bank statement"),
    ],
)
def test_whole_file_failures_say_what_to_do(name: str, reason: str) -> None:
    for fmt in (None, "ofx"):
        assert error_of((FIX / name).read_bytes(), format=fmt).startswith(reason)


# --- quirks, inline -------------------------------------------------------------------------

HEAD = b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nENCODING:USASCII\nCHARSET:1252\n\n"


def statement(body: bytes, *, head: bytes = HEAD, curdef: bytes = b"<CURDEF>BRL\n") -> bytes:
    return (
        head + b"<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS>\n" + curdef + b"<BANKACCTFROM>\n"
        b"<BANKID>1\n<ACCTID>9\n<ACCTTYPE>MONEYMRKT\n</BANKACCTFROM>\n<BANKTRANLIST>\n"
        b"<DTSTART>20250101\n<DTEND>20250131\n"
        + body
        + b"</BANKTRANLIST>\n</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"
    )


def trn(amount: bytes = b"-1.00", extra: bytes = b"", date_: bytes = b"20250110") -> bytes:
    return (
        b"<STMTTRN>\n<TRNTYPE>DEBIT\n<DTPOSTED>" + date_ + b"\n<TRNAMT>" + amount + b"\n"
        b"<FITID>F1\n" + extra + b"</STMTTRN>\n"
    )


def test_moneymarket_is_a_savings_account_and_no_ledger_balance_is_fine() -> None:
    events = parse(statement(trn()))
    assert infos(events)[0].account_type is AccountType.SAVINGS
    assert infos(events)[0].account_type_raw == "MONEYMRKT"
    assert ends(events)[0].ledger_balance is None


def test_empty_leaf_elements_do_not_swallow_their_siblings() -> None:
    got = lines(parse(statement(trn(extra=b"<NAME>\n<MEMO>Pagto\n<CHECKNUM>\n"))))
    assert [(ln.name, ln.memo, ln.description) for ln in got] == [(None, "Pagto", "Pagto")]


def test_payee_aggregate_name_is_used_when_there_is_no_name() -> None:
    extra = b"<PAYEE>\n<NAME>LOJA X\n<ADDR1>Rua 1\n</PAYEE>\n<MEMO>compra\n"
    [line] = lines(parse(statement(trn(extra=extra))))
    assert (line.name, line.description) == ("LOJA X", "LOJA X - compra")


def test_nested_account_aggregates_do_not_leak_into_the_transaction() -> None:
    extra = b"<BANKACCTTO>\n<BANKID>237\n<ACCTID>555\n<ACCTTYPE>CHECKING\n</BANKACCTTO>\n"
    events = parse(statement(trn(extra=extra)))
    assert infos(events)[0].account_id == "9"
    assert len(lines(events)) == 1


def test_cdata_and_comments_in_xml() -> None:
    extra = b"<MEMO><![CDATA[Caf\xc3\xa9 <especial> & cia]]></MEMO><!-- a comment <X> -->"
    [line] = lines(parse(statement(trn(extra=extra), head=b'<?xml version="1.0"?>\n')))
    assert line.memo == "Café <especial> & cia"


def test_lower_case_tags() -> None:
    data = statement(trn(extra=b"<MEMO>ok\n")).lower().replace(b"<ofx>", b"<OFX>", 1)
    events = parse(data)
    assert [ln.description for ln in lines(events)] == ["ok"]
    assert infos(events)[0].currency == "BRL"


def test_an_unclosed_stmttrn_is_closed_by_the_next_one() -> None:
    body = trn().replace(b"</STMTTRN>\n", b"") + trn(b"-2.00")
    assert [ln.amount for ln in lines(parse(statement(body)))] == [-100, -200]


def test_a_stray_end_tag_does_not_let_a_transaction_swallow_its_statement() -> None:
    body = trn().replace(b"</STMTTRN>\n", b"")
    data = statement(body).replace(b"</OFX>", b"</STMTTRN></OFX>")
    events = parse(data)
    assert [type(e) for e in events] == [StatementInfo, StatementLine, StatementEnd]


def test_bad_transaction_becomes_a_line_error_and_the_rest_go_on() -> None:
    body = trn(b"abc") + trn(date_=b"20251340") + trn(b"") + trn(b"-3.00")
    events = parse(statement(body))
    errors = [e for e in events if isinstance(e, LineError)]
    assert [e.ordinal for e in errors] == [1, 2, 3]
    assert "not a number" in errors[0].reason and "valid date" in errors[1].reason
    assert "no amount" in errors[2].reason
    assert [(ln.ordinal, ln.amount) for ln in lines(events)] == [(4, -300)]
    assert (ends(events)[0].lines, ends(events)[0].errors) == (1, 3)


def test_dtuser_stands_in_for_a_missing_dtposted() -> None:
    body = trn().replace(b"<DTPOSTED>20250110\n", b"<DTUSER>20250111\n")
    assert lines(parse(statement(body)))[0].date == date(2025, 1, 11)


def test_currency_fallback_only_when_curdef_is_missing_or_invalid() -> None:
    no_currency = statement(trn(), curdef=b"")
    assert "no valid currency (CURDEF)" in error_of(no_currency)
    assert infos(parse(no_currency, currency="USD"))[0].currency == "USD"
    assert infos(parse(statement(trn(), curdef=b"<CURDEF>XXX\n"), currency="EUR"))[0].currency == (
        "EUR"
    )
    assert infos(parse(statement(trn()), currency="USD"))[0].currency == "BRL"


def test_zero_decimal_currency_uses_its_own_exponent() -> None:
    [line] = lines(parse(statement(trn(b"-1500"), curdef=b"<CURDEF>JPY\n")))
    assert (line.amount, line.currency) == (-1500, "JPY")


def test_statement_without_transactions_still_has_info_and_end() -> None:
    events = parse(statement(b""))
    assert [type(e) for e in events] == [StatementInfo, StatementEnd]
    assert infos(events)[0].start == date(2025, 1, 1)


def test_no_statement_at_all() -> None:
    data = HEAD + b"<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</STATUS></SONRS>"
    data += b"</SIGNONMSGSRSV1></OFX>"
    assert "holds no bank-account or credit-card statement" in error_of(data)
    investment = HEAD + b"<OFX><INVSTMTMSGSRSV1><INVSTMTTRNRS><INVSTMTRS></INVSTMTRS>"
    investment += b"</INVSTMTTRNRS></INVSTMTMSGSRSV1></OFX>"
    assert "investment statement" in error_of(investment)
    refused = HEAD + b"<OFX><BANKMSGSRSV1><STMTTRNRS><STATUS><CODE>2000\n<SEVERITY>ERROR\n"
    refused += b"<MESSAGE>Conta bloqueada\n</STATUS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    assert error_of(refused).endswith("only an error: Conta bloqueada")


def test_header_that_lies_about_the_charset() -> None:
    body = trn(extra=b"<MEMO>P\xc3O DE A\xc7\xdaCAR\n")  # cp1252 bytes
    utf8_header = HEAD.replace(b"ENCODING:USASCII\nCHARSET:1252", b"ENCODING:UTF-8\nCHARSET:NONE")
    assert lines(parse(statement(body, head=utf8_header)))[0].memo == "PÃO DE AÇÚCAR"
    # ... and UTF-8 bytes under a CHARSET:1252 header are read as UTF-8.
    body = trn(extra="<MEMO>PÃO DE AÇÚCAR\n".encode())
    assert lines(parse(statement(body)))[0].memo == "PÃO DE AÇÚCAR"


def test_charset_switch_far_into_the_file() -> None:
    """Declared UTF-8, ASCII for the first 100 KB, then cp1252: the rest is still read."""
    utf8_header = HEAD.replace(b"ENCODING:USASCII\nCHARSET:1252", b"ENCODING:UTF-8\nCHARSET:NONE")
    body = trn(extra=b"<MEMO>" + b"x" * 100 + b"\n") * 800 + trn(extra=b"<MEMO>A\xc7\xdaCAR\n")
    got = lines(parse(statement(body, head=utf8_header)))
    assert len(got) == 801 and got[-1].memo == "AÇÚCAR"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(encoding: str) -> None:
    text = statement(trn(extra="<MEMO>Açaí\n".encode())).decode("utf-8")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert sniff_format(data) == "ofx"
    assert lines(parse(data))[0].memo == "Açaí"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_numbers_with_any_line_ending(newline: bytes) -> None:
    data = statement(trn() + trn()).replace(b"\n", newline)
    assert [ln.line_no for ln in lines(parse(data))] == [17, 23]


def test_everything_on_one_line() -> None:
    data = statement(trn() + trn(b"-2.00")).replace(b"\n", b"")
    got = lines(parse(data))
    assert [ln.amount for ln in got] == [-100, -200] and {ln.line_no for ln in got} == {1}


def test_content_after_closing_ofx_is_ignored() -> None:
    data = statement(trn()) + b"<OFX><junk>\x00\x01"
    assert len(lines(parse(data))) == 1


def test_html_pdf_and_binary_are_refused_with_reasons() -> None:
    assert "PDF" in error_of(b"%PDF-1.7\n...", format="ofx")
    assert "spreadsheet or ZIP" in error_of(b"PK\x03\x04....", format="ofx")
    assert "HTML page" in error_of(b"\n\n<!doctype html><html><body>x</body></html>")
    assert "no <OFX> element" in error_of(b"hello world", format="ofx")
    assert "header is there" in error_of(b"OFXHEADER:100\nDATA:OFXSGML\n", format="ofx")
    assert "binary file" in error_of(b"\x00\x01\x02\x03garbage")
    assert "neither an OFX nor a CSV" in error_of(b"just some words\nand more words\n")


def test_value_longer_than_a_megabyte_is_refused() -> None:
    data = HEAD + b"<OFX><MEMO>" + b"a" * (1 << 21)
    assert "longer than 1 MB" in error_of(data, chunk_size=1 << 16)


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "bank_sgml.ofx",
        "bank_v2.ofx",
        "creditcard_cp1252.ofx",
        "multi_statement.ofx",
        "name_without_memo.ofx",
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunk_boundaries_change_nothing(name: str, chunk_size: int) -> None:
    data = (FIX / name).read_bytes()
    assert parse(data, chunk_size=chunk_size) == parse(data)


def test_chunk_boundaries_inside_cdata_comments_and_multibyte_characters() -> None:
    extra = "<MEMO><![CDATA[Açaí <b>]]></MEMO><!-- <STMTTRN> -->".encode()
    data = statement(trn(extra=extra) + trn(), head=b'<?xml version="1.0"?>\n')
    whole = parse(data)
    assert lines(whole)[0].memo == "Açaí <b>" and len(lines(whole)) == 2
    for size in (1, 2, 3, 5, 11):
        assert parse(data, chunk_size=size) == whole


def test_sample_generator_round_trips() -> None:
    for xml in (False, True):
        events = parse(ofx_sample(300, statements=3, xml=xml, seed=7))
        assert len(infos(events)) == 3 and len(ends(events)) == 3
        got = lines(events)
        assert len(got) == 300 and [ln.ordinal for ln in got] == list(range(1, 301))
        assert all(ln.fitid and ln.description for ln in got)
        assert sum(e.ledger_balance or 0 for e in ends(events)) == sum(ln.amount for ln in got)


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20250115120000[-3:BRT]", datetime(2025, 1, 15, 12, tzinfo=timezone(timedelta(hours=-3)))),
        ("20250115020000[+9:JST]", datetime(2025, 1, 15, 2, tzinfo=timezone(timedelta(hours=9)))),
        (
            "20250115013000.250[+5.30:IST]",
            datetime(2025, 1, 15, 1, 30, 0, 250000, tzinfo=timezone(timedelta(hours=5.5))),
        ),
        (
            "20250115120000[-3.5:NST]",
            datetime(2025, 1, 15, 12, tzinfo=timezone(-timedelta(hours=3.5))),
        ),
        ("20250115", datetime(2025, 1, 15, tzinfo=UTC)),
        ("2025-01-15", datetime(2025, 1, 15, tzinfo=UTC)),
        ("202501151230", datetime(2025, 1, 15, 12, 30, tzinfo=UTC)),
        ("20250115[-3:BRT]", datetime(2025, 1, 15, tzinfo=timezone(timedelta(hours=-3)))),
        ("20241231235960", datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_ofx_datetimes(text: str, expected: datetime) -> None:
    assert parse_ofx_datetime(text) == expected
    assert parse_ofx_datetime(text).utcoffset() == expected.utcoffset()
    assert parse_ofx_date(text) == expected.date()


@pytest.mark.parametrize(
    "text", ["", "2025011", "20251315", "20250230", "20250115250000", "20250115[+15:X]", "abc"]
)
def test_bad_ofx_dates(text: str) -> None:
    with pytest.raises(DateError):
        parse_ofx_date(text)


def ofx_text(moment: datetime, millis: bool, name: str) -> str:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    tz = f"{sign}{hours}" + (f".{mins:02d}" if mins else "")
    frac = f".{moment.microsecond // 1000:03d}" if millis else ""
    return f"{moment:%Y%m%d%H%M%S}{frac}[{tz}:{name}]"


offsets = st.integers(min_value=-12 * 4, max_value=14 * 4).map(
    lambda q: timezone(timedelta(minutes=15 * q))
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    tz=offsets,
    millis=st.booleans(),
    name=st.sampled_from(["BRT", "JST", "GMT", "", "X"]),
)
def test_any_offset_gives_the_wall_clock_date(
    moment: datetime, tz: timezone, millis: bool, name: str
) -> None:
    """The calendar date is the one on the wall clock of the stated offset, and the instant is
    exact: the same as the aware datetime that was written."""
    aware = moment.replace(tzinfo=tz, microsecond=(moment.microsecond // 1000) * 1000 * millis)
    text = ofx_text(aware, millis, name)
    assert parse_ofx_date(text) == aware.date()
    assert parse_ofx_datetime(text) == aware
