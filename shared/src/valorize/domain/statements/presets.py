"""How to read a CSV export: the column mapping a client may send, and named presets for the
layouts of real banks (DECISION.md says where each one's knowledge comes from)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from valorize.domain.model import AccountType
from valorize.domain.statements.events import StatementKind
from valorize.domain.statements.text import fold_name

# A column by its header name (compared without case, accents or punctuation) or by its
# 0-based position (for files without a header row).
ColumnRef = (
    Annotated[str, Field(min_length=1, max_length=100)] | Annotated[int, Field(ge=0, le=255)]
)


class CsvMapping(BaseModel):
    """Which column is which in a CSV statement, and how its values are written."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    date: ColumnRef
    # One column, or several joined with " - " (e.g. Banco Inter's Histórico + Descrição).
    description: ColumnRef | list[ColumnRef]
    amount: ColumnRef | None = None
    debit: ColumnRef | None = None
    credit: ColumnRef | None = None
    fitid: ColumnRef | None = None  # a unique id per line, when the bank gives one
    date_format: Annotated[str, Field(min_length=2, max_length=40)] | None = None  # "%d/%m/%Y"
    decimal_separator: Literal[".", ","] | None = None  # None: detected from the file
    thousands_separator: Literal[".", ",", " ", "'", ""] | None = None  # None: detected
    # "signed": negative is money out. "debit_positive": the file writes purchases as
    # positive numbers and payments/refunds as negative (credit-card exports).
    sign: Literal["signed", "debit_positive"] = "signed"
    skip_rows: Annotated[int, Field(ge=0, le=1000)] | None = None  # rows before the header
    has_header: bool = True
    delimiter: Literal[",", ";", "\t", "|"] | None = None  # None: detected
    encoding: Annotated[str, Field(min_length=1, max_length=40)] | None = None  # None: detected
    # Stop at the first row whose first cell starts with this (e.g. Bradesco's footer).
    stop_at: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @field_validator("description")
    @classmethod
    def _some_description(cls, v: ColumnRef | list[ColumnRef]) -> ColumnRef | list[ColumnRef]:
        if isinstance(v, list) and not 1 <= len(v) <= 5:
            raise ValueError("give one to five description columns")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @field_validator("date_format")
    @classmethod
    def _date_directives(cls, v: str | None) -> str | None:
        if v is not None and ("%d" not in v or ("%m" not in v and "%b" not in v)):
            raise ValueError("the date format needs a day (%d) and a month (%m), e.g. %d/%m/%Y")
        return v

    @model_validator(mode="after")
    def _amount_columns(self) -> CsvMapping:
        if self.amount is not None and (self.debit is not None or self.credit is not None):
            raise ValueError("give either an amount column or debit and credit columns, not both")
        if self.amount is None and (self.debit is None or self.credit is None):
            raise ValueError("give an amount column, or both a debit and a credit column")
        if not self.has_header and any(isinstance(c, str) for c in self.columns()):
            raise ValueError("without a header row, columns are given by position (0, 1, ...)")
        if (
            self.decimal_separator is not None
            and self.thousands_separator == self.decimal_separator
        ):
            raise ValueError("the decimal and thousands separators must differ")
        return self

    def description_columns(self) -> list[ColumnRef]:
        return list(self.description) if isinstance(self.description, list) else [self.description]

    def columns(self) -> list[ColumnRef]:
        """Every column the mapping names."""
        refs: list[ColumnRef | None] = [self.date, *self.description_columns()]
        refs += [self.amount, self.debit, self.credit, self.fitid]
        return [r for r in refs if r is not None]


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    mapping: CsvMapping
    # Folded header names that must all be present for the preset to be recognised.
    signature: frozenset[str]
    kind: StatementKind = StatementKind.BANK
    account_type: AccountType | None = None
    currency: str | None = None
    source: str = ""


def _sig(*names: str) -> frozenset[str]:
    return frozenset(fold_name(n) for n in names)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="bradesco",
            title="Bradesco — extrato de conta (CSV)",
            mapping=CsvMapping(
                date="Data",
                description="Histórico",
                credit="Crédito (R$)",
                debit="Débito (R$)",
                date_format="%d/%m/%Y",
                decimal_separator=",",
                thousands_separator=".",
                delimiter=";",
                stop_at="Últimos Lançamentos",
            ),
            signature=_sig("Data", "Histórico", "Docto.", "Crédito (R$)", "Débito (R$)"),
            account_type=AccountType.CHECKING,
            currency="BRL",
            source="internet-banking export: 'Extrato de: Ag: … | Conta: …' line, then "
            "Data;Histórico;Docto.;Crédito (R$);Débito (R$);Saldo (R$), Windows-1252",
        ),
        Preset(
            name="inter",
            title="Banco Inter — extrato de conta (CSV)",
            mapping=CsvMapping(
                date="Data Lançamento",
                description=["Histórico", "Descrição"],
                amount="Valor",
                date_format="%d/%m/%Y",
                decimal_separator=",",
                thousands_separator=".",
                delimiter=";",
            ),
            signature=_sig("Data Lançamento", "Histórico", "Descrição", "Valor"),
            account_type=AccountType.CHECKING,
            currency="BRL",
            source="app/internet-banking export: 4 preamble lines (Extrato Conta Corrente, "
            "Conta, Período, Saldo), then Data Lançamento;Histórico;Descrição;Valor;Saldo",
        ),
        Preset(
            name="nubank_account",
            title="Nubank — extrato da conta (CSV)",
            mapping=CsvMapping(
                date="Data",
                description="Descrição",
                amount="Valor",
                fitid="Identificador",
                date_format="%d/%m/%Y",
                delimiter=",",
            ),
            signature=_sig("Data", "Valor", "Identificador", "Descrição"),
            account_type=AccountType.CHECKING,
            currency="BRL",
            source="app export of the account: Data,Valor,Identificador,Descrição; "
            "Identificador is a UUID per line (used as FITID); decimals detected",
        ),
        Preset(
            name="nubank_card",
            title="Nubank — fatura do cartão (CSV)",
            mapping=CsvMapping(
                date="date",
                description="title",
                amount="amount",
                date_format="%Y-%m-%d",
                sign="debit_positive",
                delimiter=",",
            ),
            signature=_sig("date", "title", "amount"),
            kind=StatementKind.CREDIT_CARD,
            account_type=AccountType.CREDIT,
            currency="BRL",
            source="credit-card bill export: date,title,amount (some add category); "
            "purchases positive, payments and refunds negative; '72.80' or '\"34,00\"'",
        ),
    )
}
GENERIC = "generic"

# Header names the generic preset recognises (folded). Portuguese and English.
DATE_NAMES = _sig(
    "data",
    "date",
    "data lançamento",
    "data lancamento",
    "data de lançamento",
    "data movimento",
    "data do movimento",
    "data da transação",
    "data transação",
    "dt",
    "dia",
    "transaction date",
    "posted date",
    "posting date",
    "booking date",
    "value date",
)
DESCRIPTION_NAMES = _sig(
    "descrição",
    "description",
    "histórico",
    "lançamento",
    "title",
    "título",
    "memo",
    "payee",
    "name",
    "nome",
    "detalhes",
    "details",
    "estabelecimento",
    "narrative",
    "movimentação",
    "transaction",
    "text",
)
AMOUNT_NAMES = _sig("valor", "amount", "value", "montante", "quantia", "valor r", "importe")
DEBIT_NAMES = _sig("débito", "debit", "debito r", "saída", "saídas", "withdrawal", "paid out")
CREDIT_NAMES = _sig("crédito", "credit", "entrada", "entradas", "deposit", "paid in")
FITID_NAMES = _sig("identificador", "id", "fitid", "transaction id", "reference")


def generic_mapping(header: list[str]) -> CsvMapping | None:
    """A mapping for `header` from well-known column names, or None when a date, a
    description and an amount (or debit and credit) column are not all there."""
    folded = [fold_name(h) for h in header]

    def first(names: frozenset[str]) -> str | None:
        for raw, f in zip(header, folded, strict=True):
            if f in names:
                return raw
        return None

    date, desc = first(DATE_NAMES), first(DESCRIPTION_NAMES)
    amount, debit, credit = first(AMOUNT_NAMES), first(DEBIT_NAMES), first(CREDIT_NAMES)
    if date is None or desc is None:
        return None
    if amount is not None:
        return CsvMapping(date=date, description=desc, amount=amount, fitid=first(FITID_NAMES))
    if debit is not None and credit is not None:
        return CsvMapping(
            date=date, description=desc, debit=debit, credit=credit, fitid=first(FITID_NAMES)
        )
    return None


def recognise(header: list[str]) -> tuple[str, CsvMapping] | None:
    """The preset whose columns `header` has (the most specific first), else the generic
    mapping, else None."""
    folded = {fold_name(h) for h in header}
    for preset in sorted(PRESETS.values(), key=lambda p: -len(p.signature)):
        if preset.signature <= folded:
            return preset.name, preset.mapping
    generic = generic_mapping(header)
    return (GENERIC, generic) if generic is not None else None
