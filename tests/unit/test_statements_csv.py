"""The CSV reader: presets recognised from real banks' headers, mappings, bad rows, encodings."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from load.samples import csv_sample
from valorize.domain.model import AccountType
from valorize.domain.statements import (
    PRESETS,
    CsvMapping,
    LineError,
    StatementEnd,
    StatementError,
    StatementEvent,
    StatementInfo,
    StatementKind,
    StatementLine,
    parse_statement,
    sniff_format,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "statements"


def parse(data: bytes, **kwargs: object) -> list[StatementEvent]:
    return list(parse_statement(io.BytesIO(data), **kwargs))  # type: ignore[arg-type]


def fixture(name: str, **kwargs: object) -> list[StatementEvent]:
    return parse((FIX / name).read_bytes(), **kwargs)


def lines(events: list[StatementEvent]) -> list[StatementLine]:
    return [e for e in events if isinstance(e, StatementLine)]


def errors(events: list[StatementEvent]) -> list[LineError]:
    return [e for e in events if isinstance(e, LineError)]


def info(events: list[StatementEvent]) -> StatementInfo:
    first = events[0]
    assert isinstance(first, StatementInfo)
    return first


def error_of(data: bytes, **kwargs: object) -> str:
    with pytest.raises(StatementError) as caught:
        parse(data, **kwargs)
    return caught.value.reason


def simple(rows: list[tuple[str, str, str]]) -> list[tuple[date, int, str]]:
    return [(date.fromisoformat(d), int(a), t) for d, a, t in rows]


# --- presets, recognised from the header ----------------------------------------------------


def test_nubank_account_export() -> None:
    events = fixture("nubank_account.csv")
    assert sniff_format((FIX / "nubank_account.csv").read_bytes()) == "csv"
    assert (info(events).preset, info(events).currency, info(events).format) == (
        "nubank_account",
        "BRL",
        "csv",
    )
    got = lines(events)
    assert [(ln.date, ln.amount) for ln in got] == [
        (date(2025, 5, 1), -3779),
        (date(2025, 5, 2), 250000),
        (date(2025, 5, 3), -157572),
        (date(2025, 5, 5), -12000),
    ]
    assert got[0].fitid == "68138eea-2dd1-40ae-898f-6ebf077ff936"  # Identificador
    assert got[0].description == "Compra no débito via NuPay - iFood"
    assert "Agência: 1234 Conta: 56789-0" in got[3].description  # a quoted field with commas
    assert [ln.line_no for ln in got] == [2, 3, 4, 5]


def test_nubank_card_export_is_a_credit_card_with_purchases_positive() -> None:
    events = fixture("nubank_card.csv")
    i = info(events)
    assert (i.preset, i.kind, i.account_type) == (
        "nubank_card",
        StatementKind.CREDIT_CARD,
        AccountType.CREDIT,
    )
    assert [(ln.amount, ln.description) for ln in lines(events)] == [
        (-10666, "Studio Z - Parcela 1/3"),
        (-7280, "Burger King"),
        (-2345, "Uber *Trip"),
        (455853, "Pagamento recebido"),
        (1500, 'Estorno de "Compra duplicada"'),
    ]


def test_nubank_card_export_with_quoted_comma_decimals() -> None:
    data = b'date,title,amount\n2026-09-16,Taxi 14set,"32,45"\n2026-09-17,Pagamento,"-1.034,00"\n'
    events = parse(data)
    assert info(events).preset == "nubank_card"
    assert [ln.amount for ln in lines(events)] == [-3245, 103400]


def test_inter_export_with_preamble_semicolons_and_brazilian_numbers() -> None:
    events = fixture("inter.csv")
    assert info(events).preset == "inter"
    got = lines(events)
    assert [(ln.date, ln.amount, ln.description) for ln in got] == [
        (date(2025, 6, 30), -25000, "Pix enviado - JOAO DA SILVA"),
        (date(2025, 6, 28), -5590, "Pagamento efetuado - NETFLIX.COM"),
        (date(2025, 6, 15), 350000, "Pix recebido - EMPRESA EXEMPLO LTDA"),
        (date(2025, 6, 2), -1230, "Compra no debito - PADARIA PÃO QUENTE"),
    ]
    assert [ln.line_no for ln in got] == [7, 8, 9, 10]


def test_bradesco_export_in_cp1252_with_debit_credit_columns_and_footer() -> None:
    events = fixture("bradesco.csv")
    assert info(events).preset == "bradesco"
    got = lines(events)
    # SALDO ANTERIOR (no debit or credit) is skipped; "Últimos Lançamentos" ends the list.
    assert [(ln.amount, ln.description) for ln in got] == [
        (466667, "CREDITO DE SALARIO"),
        (-152000, "PIX ENVIADO"),
        (-152000, "PIX ENVIADO"),  # two identical lines are two lines
        (-8990, "PAGTO ELETRON COBRANCA"),
        (-4500, "TARIFA BANCÁRIA CESTA"),
    ]
    assert errors(events) == []
    end = events[-1]
    assert isinstance(end, StatementEnd) and (end.lines, end.errors) == (5, 0)


def test_generic_layout_with_bad_rows_keeps_the_good_ones() -> None:
    events = fixture("generic.csv")
    assert info(events).preset == "generic"
    assert [(ln.line_no, ln.amount) for ln in lines(events)] == [
        (2, -450),
        (3, 325000),
        (4, -1999),
        (9, 1200),
    ]
    got = [(e.line_no, e.ordinal, e.reason) for e in errors(events)]
    assert got == [
        (5, 4, "'not a date' does not match the date format %Y-%m-%d"),
        (6, 5, "the amount is empty"),
        (7, 6, "'-1.005' has 3 decimal places; the currency has 2"),
        (10, 8, "the row has 2 columns; 3 needed"),
    ]
    end = events[-1]
    assert isinstance(end, StatementEnd) and (end.lines, end.errors) == (4, 4)


@pytest.mark.parametrize("name", ["nubank_account", "nubank_card", "inter", "bradesco"])
def test_preset_by_name_reads_the_same(name: str) -> None:
    assert parse((FIX / f"{name}.csv").read_bytes(), preset=name) == fixture(f"{name}.csv")


def test_preset_names_and_sources_are_documented() -> None:
    assert set(PRESETS) == {"nubank_account", "nubank_card", "inter", "bradesco"}
    assert all(p.source and p.title and p.signature for p in PRESETS.values())


def test_headers_in_any_case_without_accents() -> None:
    data = "DATA;HISTORICO;DOCTO;CREDITO (R$);DEBITO (R$);SALDO\n02/06/2025;X;1;10,00;;10,00\n"
    events = parse(data.encode())
    assert info(events).preset == "bradesco" and lines(events)[0].amount == 1000


@pytest.mark.parametrize(
    ("header", "row", "amount"),
    [
        ("Data,Descrição,Valor", '05/03/2025,Mercado,"-1.234,56"', -123456),
        ("Date\tDescription\tAmount", "2025-03-05\tMarket\t-12.50", -1250),
        ("data|historico|debito|credito", "05/03/2025|Tarifa|15,00|", -1500),
        ("Transaction Date;Payee;Paid out;Paid in", "05/03/2025;Shop;;20.00", 2000),
    ],
)
def test_generic_recognises_common_names(header: str, row: str, amount: int) -> None:
    events = parse(f"{header}\n{row}\n".encode())
    assert info(events).preset == "generic"
    assert [ln.amount for ln in lines(events)] == [amount]
    assert lines(events)[0].date == date(2025, 3, 5)


def test_unrecognised_columns_are_listed_with_what_is_needed() -> None:
    reason = error_of("Quando;O quê;Quanto\n01/01/2025;x;1,00\n".encode())
    assert reason == (
        "Columns found: Quando, O quê, Quanto; need a date, a description and an amount (or "
        "debit and credit) column — choose a preset or send a mapping"
    )


def test_unknown_preset() -> None:
    reason = error_of(b"a,b\n1,2\n", preset="itau")
    assert reason.startswith("Unknown CSV preset 'itau'; the presets are: bradesco")


def test_a_preset_whose_columns_are_missing() -> None:
    reason = error_of(b"Date,Description,Amount\n2025-01-01,x,1.00\n", preset="inter")
    assert "were not found in one header row" in reason and "Columns found: Date" in reason


# --- mappings -------------------------------------------------------------------------------


def test_mapping_from_json_with_debit_positive_and_explicit_formats() -> None:
    mapping = CsvMapping.model_validate_json(
        json.dumps(
            {
                "date": "Quando",
                "description": ["O quê", "Onde"],
                "amount": "Quanto",
                "date_format": "%d.%m.%y",
                "decimal_separator": ",",
                "thousands_separator": " ",
                "sign": "debit_positive",
            }
        )
    )
    data = "Quando;O quê;Onde;Quanto\n05.03.25;Café;Centro;1 234,50\n06.03.25;Estorno;;-10,00\n"
    events = parse(data.encode(), mapping=mapping)
    assert info(events).preset == "custom"
    assert [(ln.date, ln.amount, ln.description) for ln in lines(events)] == [
        (date(2025, 3, 5), -123450, "Café - Centro"),
        (date(2025, 3, 6), 1000, "Estorno"),
    ]


def test_mapping_by_position_without_a_header() -> None:
    mapping = CsvMapping(date=0, description=2, amount=1, has_header=False, skip_rows=1)
    data = b"exported 2025-03-31\n2025-03-01,-5.00,Bus\n2025-03-02,7.00,Refund\n"
    assert [(ln.amount, ln.line_no) for ln in lines(parse(data, mapping=mapping))] == [
        (-500, 2),
        (700, 3),
    ]


def test_mapping_with_explicit_skip_rows_and_encoding() -> None:
    mapping = CsvMapping(
        date="Data", description="Histórico", amount="Valor", skip_rows=2, encoding="latin-1"
    )
    data = "Banco;X\nConta;1\nData;Histórico;Valor\n01/02/2025;Tarifa ÚNICA;-1,00\n"
    got = lines(parse(data.encode("cp1252"), mapping=mapping))
    assert [(ln.description, ln.amount) for ln in got] == [("Tarifa ÚNICA", -100)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"date": "d", "description": "x"}, "give an amount column"),
        ({"date": "d", "description": "x", "debit": "a"}, "both a debit and a credit"),
        ({"date": "d", "description": "x", "amount": "a", "credit": "c"}, "not both"),
        ({"date": "d", "description": "x", "amount": "a", "has_header": False}, "by position"),
        ({"date": "d", "description": "x", "amount": "a", "encoding": "klingon"}, "encoding"),
        ({"date": "d", "description": "x", "amount": "a", "date_format": "%Y"}, "a day"),
        ({"date": "d", "description": [], "amount": "a"}, "one to five"),
        ({"date": "d", "description": "x", "amount": "a", "colour": "red"}, "Extra inputs"),
        ({"date": 1.5, "description": "x", "amount": "a"}, "date"),
        ({"date": "d", "description": "x", "amount": "a", "sign": "positive"}, "sign"),
        (
            {
                "date": "d",
                "description": "x",
                "amount": "a",
                "decimal_separator": ",",
                "thousands_separator": ",",
            },
            "must differ",
        ),
    ],
)
def test_mapping_validation(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CsvMapping.model_validate_json(json.dumps(fields))


# --- formats detected from the rows ---------------------------------------------------------


def test_month_first_dates_are_detected_when_a_day_exceeds_12() -> None:
    data = b"Date,Description,Amount\n03/04/2025,a,1.00\n12/31/2025,b,2.00\n"
    assert [ln.date for ln in lines(parse(data))] == [date(2025, 3, 4), date(2025, 12, 31)]


def test_day_first_is_the_default_for_ambiguous_dates() -> None:
    data = b"Data;Descricao;Valor\n03/04/2025;a;1,00\n"
    assert lines(parse(data))[0].date == date(2025, 4, 3)


def test_dates_with_a_time_and_two_digit_years() -> None:
    data = b"Data;Descricao;Valor\n03/04/25 10:31;a;1,00\n"
    assert lines(parse(data))[0].date == date(2025, 4, 3)


def test_unknown_date_format_fails_the_file() -> None:
    data = b"Date,Description,Amount\nMarch 3rd,a,1.00\nMarch 4th,b,2.00\n"
    assert "unknown format" in error_of(data)


def test_decimal_comma_detected_for_the_whole_column() -> None:
    data = b"Data;Descricao;Valor\n01/01/2025;a;1.234\n02/01/2025;b;-5,50\n03/01/2025;c;7,25\n"
    assert [ln.amount for ln in lines(parse(data))] == [123400, -550, 725]


def test_currency_of_the_amounts() -> None:
    data = b"Date,Description,Amount\n2025-01-01,a,1500\n"
    events = parse(data, currency="JPY")
    assert (info(events).currency, lines(events)[0].amount) == ("JPY", 1500)
    assert lines(parse(data, currency="USD"))[0].amount == 150000
    assert "Unknown currency" in error_of(data, currency="ABC")


# --- rows that are not transactions ---------------------------------------------------------


def test_blank_rows_and_repeated_headers_are_skipped_silently() -> None:
    data = b"Date,Description,Amount\n2025-01-01,a,1.00\n,,\n\nDate,Description,Amount\n"
    data += b"2025-01-02,b,2.00\n"
    events = parse(data)
    assert [ln.line_no for ln in lines(events)] == [2, 6] and errors(events) == []


def test_quoted_newlines_keep_line_numbers_right() -> None:
    data = b'Date,Description,Amount\n2025-01-01,"two\nlines",1.00\n2025-01-02,b,oops\n'
    events = parse(data)
    assert lines(events)[0].description == "two lines"
    assert [(e.line_no, e.ordinal) for e in errors(events)] == [(4, 2)]


def test_an_unbalanced_quote_costs_rows_not_the_file() -> None:
    data = b'Date,Description,Amount\n2025-01-01,"oops,1.00\n2025-01-02,b,2.00\n'
    events = parse(data)
    assert isinstance(events[-1], StatementEnd)
    assert len(lines(events)) + len(errors(events)) == 1


def test_header_only_is_an_empty_statement() -> None:
    events = parse(b"Date,Description,Amount\n")
    assert [type(e) for e in events] == [StatementInfo, StatementEnd]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf\r\n  \n", "The file is empty"),
        (b"\x00\x01\x02,\x03", "binary file"),
    ],
)
def test_whole_file_failures(data: bytes, reason: str) -> None:
    assert reason in error_of(data, format="csv")


# --- encodings and streaming ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("cp1252", b""), ("utf-16", b"")],
)
def test_encodings(encode: str, prefix: bytes) -> None:
    data = prefix + "Data;Descrição;Valor\n01/01/2025;Açaí “bom”;-1,00\n".encode(encode)
    events = parse(data)
    assert lines(events)[0].description == "Açaí “bom”"


def test_cp1252_after_the_first_64_kib_of_ascii() -> None:
    rows = "".join(f"01/01/2025;linha {i:06d};-1,00\n" for i in range(3000))
    data = ("Data;Descricao;Valor\n" + rows).encode() + "01/01/2025;Pão;-2,00\n".encode("cp1252")
    got = lines(parse(data))
    assert len(got) == 3001 and got[-1].description == "Pão"


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_line_endings(newline: bytes) -> None:
    data = (FIX / "generic.csv").read_bytes().replace(b"\n", newline)
    assert parse(data) == fixture("generic.csv")


@pytest.mark.parametrize(
    "name", ["nubank_account.csv", "nubank_card.csv", "inter.csv", "bradesco.csv", "generic.csv"]
)
@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_chunk_boundaries_change_nothing(name: str, chunk_size: int) -> None:
    assert fixture(name, chunk_size=chunk_size) == fixture(name)


@pytest.mark.parametrize("layout", ["nubank_account", "inter", "generic"])
def test_sample_generator_round_trips(layout: str) -> None:
    events = parse(csv_sample(500, layout=layout, seed=3))  # type: ignore[arg-type]
    got = lines(events)
    assert len(got) == 500 and errors(events) == []
    assert info(events).preset == layout


def test_sniffing() -> None:
    assert sniff_format(b"Date,Description,Amount\n") == "csv"
    assert sniff_format(b"\xef\xbb\xbfData;Valor\n") == "csv"
    assert sniff_format(b"just words\n") is None
    assert sniff_format(b"") is None
    assert sniff_format(b"%PDF-1.4 a,b") is None
    assert sniff_format(b"<html><body>a,b</body></html>") is None
    assert sniff_format(b"a,b\x00c") is None
    assert sniff_format(b"OFXHEADER:100\nDATA:OFXSGML") == "ofx"
    assert sniff_format(b'<?xml version="1.0"?><?OFX OFXHEADER="200"?>') == "ofx"
