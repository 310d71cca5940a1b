"""Import classification, review rules and account resolution: pure domain, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from valorize.domain.errors import ValidationFailed
from valorize.domain.imports import (
    Classification,
    Classifier,
    ExistingTransaction,
    Resolution,
    StagedRow,
    description_words,
    matches_account,
    new_account_name,
    row_id,
    similar,
    transaction_id,
)
from valorize.domain.model import Account, AccountType
from valorize.domain.statements import StatementInfo, StatementKind, StatementLine
from valorize.service.imports.review import _review
from valorize.service.requests.imports import UpdateImportRow

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def line(
    amount: int,
    day: str,
    description: str = "Coffee",
    fitid: str | None = None,
    ordinal: int = 1,
) -> StatementLine:
    return StatementLine(
        statement=0,
        ordinal=ordinal,
        line_no=ordinal,
        fitid=fitid,
        date=date.fromisoformat(day),
        amount=amount,
        currency="BRL",
        description=description,
    )


def existing(
    txn_id: str, amount: int, day: str, description: str = "Coffee", fitid: str | None = None
) -> ExistingTransaction:
    return ExistingTransaction(txn_id, date.fromisoformat(day), amount, fitid, description)


def test_ids_are_deterministic_ordered_and_hex() -> None:
    assert row_id(0, 7) == "000-0000007" < row_id(0, 12) < row_id(1, 1)
    tid = transaction_id("imp1", "000-0000001")
    assert tid == transaction_id("imp1", "000-0000001") != transaction_id("imp2", "000-0000001")
    assert len(tid) == 32 and int(tid, 16) >= 0


def test_fitid_match_is_a_duplicate_when_amount_and_date_agree_else_a_conflict() -> None:
    c = Classifier(
        [
            existing("a", -500, "2025-03-01", fitid="F1"),
            existing("b", 100, "2025-03-02", fitid="F2"),
        ]
    )
    dup = c.classify(line(-500, "2025-03-01", fitid="F1"))
    assert dup.classification is Classification.DUPLICATE and dup.matched and dup.matched.id == "a"
    conflict = c.classify(line(150, "2025-03-02", fitid="F2"))
    assert conflict.classification is Classification.CONFLICT
    assert conflict.note and "amount" in conflict.note
    assert c.classify(line(-500, "2025-03-01", fitid="F3")).classification is Classification.NEW


def test_a_fitid_repeated_in_the_file_is_a_duplicate_or_conflict_of_its_first_line() -> None:
    c = Classifier()
    assert c.classify(line(-500, "2025-03-01", fitid="X")).classification is Classification.NEW
    assert (
        c.classify(line(-500, "2025-03-01", fitid="X")).classification is Classification.DUPLICATE
    )
    assert c.classify(line(-501, "2025-03-01", fitid="X")).classification is Classification.CONFLICT


def test_identical_lines_with_different_fitids_are_all_new() -> None:
    c = Classifier()
    verdicts = [c.classify(line(-500, "2025-03-01", fitid=f"F{i}")) for i in range(3)]
    assert {v.classification for v in verdicts} == {Classification.NEW}


def test_lines_without_fitid_match_amount_window_and_description_once_each() -> None:
    c = Classifier(
        [
            existing("a", -1000, "2025-03-01", "PIX ENVIADO 123"),
            existing("b", -1000, "2025-03-09", "PIX ENVIADO"),  # too far from the 5th
            existing("c", -2000, "2025-03-05", "Mercado Extra"),
        ]
    )
    first = c.classify(line(-1000, "2025-03-04", "Pix enviado"))
    assert first.classification is Classification.DUPLICATE and first.matched
    assert first.matched.id == "a"
    # The same existing transaction is not the duplicate of a second identical line.
    assert c.classify(line(-1000, "2025-03-04", "Pix enviado")).classification is Classification.NEW
    # Same amount and day, unrelated words: new.
    assert c.classify(line(-2000, "2025-03-05", "Farmácia")).classification is Classification.NEW
    # Same words, other amount: new.
    assert (
        c.classify(line(-2001, "2025-03-05", "Mercado Extra")).classification is Classification.NEW
    )


def test_the_closest_date_wins_among_several_candidates() -> None:
    c = Classifier([existing("far", -700, "2025-03-01"), existing("near", -700, "2025-03-03")])
    verdict = c.classify(line(-700, "2025-03-04"))
    assert verdict.matched and verdict.matched.id == "near"


def test_a_renamed_transaction_still_matches_its_statement_text() -> None:
    renamed = ExistingTransaction(
        "r", date(2025, 3, 1), -990, None, "Streaming", statement_description="NETFLIX.COM"
    )
    c = Classifier([renamed])
    assert (
        c.classify(line(-990, "2025-03-01", "NETFLIX.COM")).classification
        is Classification.DUPLICATE
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Coffee shop", "COFFEE SHOP", True),
        ("Café São Paulo", "CAFE SAO PAULO", True),
        ("PIX ENVIADO 1659555", "Pix enviado", True),
        ("IFOOD *RESTAURANTE SA", "IFOOD *RESTAURANTE SABOR BRASIL", True),
        ("Pagamento de boleto", "Pagamento boleto 03/12", True),
        ("PIX ENVIADO", "PIX RECEBIDO", False),
        ("Uber", "Netflix", False),
        ("", "", True),
        ("", "Something", False),
    ],
)
def test_similar_descriptions(a: str, b: str, same: bool) -> None:
    assert similar(description_words(a), description_words(b)) is same


@example("B", "B00")  # a 1-letter word matched a longer one only in one direction
@example("abc zzz", "abcd abce")  # equal sizes: the direction used to decide the answer
@given(st.text(max_size=60), st.text(max_size=60))
def test_similarity_is_symmetric_and_reflexive(a: str, b: str) -> None:
    wa, wb = description_words(a), description_words(b)
    assert similar(wa, wa)
    assert similar(wa, wb) == similar(wb, wa)


def info(**over: object) -> StatementInfo:
    base: dict[str, object] = {
        "index": 0,
        "format": "ofx",
        "kind": StatementKind.BANK,
        "currency": "BRL",
        "account_type": AccountType.CHECKING,
        "bank_id": "001",
        "account_id": "98765-4",
        "org": "Banco do Brasil",
        "fid": "001",
    }
    return StatementInfo(**{**base, **over})  # type: ignore[arg-type]


def account(**over: object) -> Account:
    base: dict[str, object] = {
        "id": "a1",
        "name": "Conta",
        "type": AccountType.CHECKING,
        "currency": "BRL",
        "opening_balance": 0,
        "balance": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Account(**{**base, **over})  # type: ignore[arg-type]


def test_accounts_match_by_number_and_bank_loosely() -> None:
    i = info()
    assert matches_account(account(number="0098765-4", bank_code="1"), i, "x")
    assert matches_account(account(number="987654"), i, "x")  # no bank code: number decides
    assert not matches_account(account(number="98765-4", bank_code="341"), i, "x")
    assert not matches_account(account(number="11111-1", bank_code="001"), i, "x")
    assert not matches_account(account(), i, "x")


def test_statements_without_a_number_match_the_account_they_created_by_name() -> None:
    csv = info(
        format="csv",
        kind=StatementKind.CREDIT_CARD,
        account_type=AccountType.CREDIT,
        bank_id=None,
        account_id=None,
        org=None,
        fid=None,
    )
    name = new_account_name(csv, "pt-BR", "Nubank — fatura do cartão (CSV)")
    assert name == "Nubank Cartão de crédito"
    assert matches_account(account(name=name, type=AccountType.CREDIT), csv, name)
    assert not matches_account(account(name=name, type=AccountType.CREDIT, number="1"), csv, name)
    assert not matches_account(account(name=name), csv, name)  # a checking account


def test_new_account_names() -> None:
    assert new_account_name(info(), "pt-BR") == "Banco do Brasil Conta corrente •8765-4"
    card = info(kind=StatementKind.CREDIT_CARD, account_type=None, account_id="4111XXXXXXXX1111")
    assert new_account_name(card, "en") == "Banco do Brasil Credit card •XX1111"
    bare = info(format="csv", account_id=None, org=None, bank_id=None, fid=None)
    assert new_account_name(bare, "en") == "Imported account (CSV)"


def row(classification: Classification, include: bool = False) -> StagedRow:
    return StagedRow("000-0000001", 0, 1, 3, classification, include, reason="bad date")


def test_review_rules() -> None:
    conflict = row(Classification.CONFLICT)
    anyway = _review(conflict, UpdateImportRow(resolution=Resolution.IMPORT_ANYWAY))
    assert anyway.include and anyway.resolution is Resolution.IMPORT_ANYWAY
    kept = _review(anyway, UpdateImportRow(include=False))
    assert not kept.include and kept.resolution is Resolution.KEEP_EXISTING
    with pytest.raises(ValidationFailed):
        _review(conflict, UpdateImportRow(include=True, resolution=Resolution.KEEP_EXISTING))
    with pytest.raises(ValidationFailed):
        _review(row(Classification.ERROR), UpdateImportRow(include=True))
    with pytest.raises(ValidationFailed):
        _review(row(Classification.NEW, True), UpdateImportRow(resolution=Resolution.KEEP_EXISTING))
    assert _review(row(Classification.DUPLICATE), UpdateImportRow(include=True)).include
    with pytest.raises(ValueError):
        UpdateImportRow()


def test_in_file_fitid_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from valorize.domain import imports

    monkeypatch.setattr(imports, "SEEN_WINDOW", 4)
    c = Classifier()
    verdicts = [c.classify(line(-1, "2025-03-01", fitid=f"F{i}")) for i in range(12)]
    assert {v.classification for v in verdicts} == {Classification.NEW}
    assert len(c._seen) + len(c._seen_before) <= 8
    # A repeat within the window is caught; one far behind it is not (and is new).
    assert (
        c.classify(line(-1, "2025-03-01", fitid="F11")).classification is Classification.DUPLICATE
    )
    assert c.classify(line(-1, "2025-03-01", fitid="F0")).classification is Classification.NEW
