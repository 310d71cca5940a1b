"""The Ledger port: transactions with their balances and read models, one atomic write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import NOW, Make, new_id
from valorize.bootstrap import Services
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.limits import SAFE_MAX, LedgerReach, OutOfSafeRange, Reach
from valorize.domain.model import Account, Origin, Split, Transaction
from valorize.domain.readmodel import prune, recompute
from valorize.domain.search import MAX_TOKENS, TextQuery
from valorize.domain.text import fold
from valorize.service.ports import IdempotencyRecord, IdempotentReplay, TransactionFilter
from valorize.service.ports.ledger import SCAN_LIMIT

EVERYTHING = TransactionFilter()


def every(services: Services, uid: str) -> list[Transaction]:
    return services.ledger.list_transactions(uid, EVERYTHING, 500, None).items


def consistent(services: Services, uid: str) -> None:
    """Balances, counts and read models equal a recomputation from the transactions."""
    txns = every(services, uid)
    truth = recompute(txns)
    months = services.ledger.get_months(uid, [*truth, "1999-01"])
    assert {m: prune(v) for m, v in months.items() if prune(v)} == truth
    flat = recompute(replace(t, date=date(2000, 1, 1)) for t in txns)
    assert prune(services.ledger.get_totals(uid)) == flat.get("2000-01", {})
    for account in services.account_store.list_accounts(uid, 100, None).items:
        mine = [t for t in txns if t.account_id == account.id]
        assert account.balance == account.opening_balance + sum(t.amount for t in mine)
        assert account.transaction_count == len(mine)


def transfer(make: Make, source: Account, target: Account, amount: int) -> list[Transaction]:
    out_id, in_id, transfer_id = new_id(), new_id(), new_id()
    common = {"origin": Origin.TRANSFER, "transfer_id": transfer_id}
    return [
        make.txn(
            source,
            -amount,
            id=out_id,
            counterpart_id=in_id,
            counterpart_account_id=target.id,
            **common,
        ),
        make.txn(
            target,
            amount,
            id=in_id,
            counterpart_id=out_id,
            counterpart_account_id=source.id,
            **common,
        ),
    ]


def test_a_transaction_round_trips_with_its_balance_and_read_models(
    services: Services, make: Make
) -> None:
    uid = make.user()
    account = make.account(uid, opening_balance=1_000, balance=1_000)
    food, rent = make.category(uid, "Food"), make.category(uid, "Rent")
    split = make.txn(
        account,
        -3_000,
        date(2024, 2, 29),
        description="Market ü",
        notes="n",
        splits=(Split(food.id, -1_000, "a"), Split(rent.id, -2_000, None)),
        fitid="F1",
    )
    plain = make.txn(account, 5_000, date(2024, 3, 1), category_id=food.id)
    services.ledger.add_transactions(uid, [split, plain])
    assert services.ledger.get_transaction(uid, split.id) == split
    assert services.ledger.get_transaction(uid, plain.id) == plain
    assert services.ledger.get_transaction(uid, new_id()) is None
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None
    assert (stored.balance, stored.transaction_count) == (3_000, 2)
    assert set(services.ledger.get_months(uid, ["2024-02", "2024-03", "2024-04"])) == {
        "2024-02",
        "2024-03",
    }
    assert set(services.ledger.get_months_from(uid, "2024-03")) == {"2024-03"}
    consistent(services, uid)


def test_a_write_to_a_missing_account_writes_nothing(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    gone = replace(account, id=new_id())
    good = make.txn(account, -5)
    with pytest.raises(NotFound):
        services.ledger.add_transactions(uid, [good, make.txn(gone, -1)])
    assert every(services, uid) == []
    consistent(services, uid)


def test_the_idempotency_record_commits_with_the_write(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    later = datetime(2100, 1, 1, tzinfo=UTC)
    record = IdempotencyRecord("k" * 64, "fp", 201, {"id": "first"}, later)
    first = make.txn(account, -5)
    services.ledger.add_transactions(uid, [first], record)
    again = IdempotencyRecord("k" * 64, "fp", 201, {"id": "second"}, later)
    with pytest.raises(IdempotentReplay) as replay:
        services.ledger.add_transactions(uid, [make.txn(account, -5)], again)
    assert replay.value.record == record
    assert [t.id for t in every(services, uid)] == [first.id]
    assert services.idempotency_store.get_idempotency(uid, "k" * 64) == record
    consistent(services, uid)


def test_a_create_answers_the_balances_its_commit_left(services: Services, make: Make) -> None:
    """The new balances come from the commit itself (its increments' results), so a live
    `account.balance` needs no read after the write."""
    uid = make.user()
    a = make.account(uid, opening_balance=1_000, balance=1_000)
    b = make.account(uid, name="Savings")
    assert services.ledger.add_transactions(uid, [make.txn(a, -300)]) == {a.id: 700}
    # Three transactions on one account: one balance, after all of them (the count, also
    # incremented in the same write, is not mistaken for it).
    made = [make.txn(a, -1), make.txn(a, -2), make.txn(a, -4)]
    assert services.ledger.add_transactions(uid, made) == {a.id: 693}
    assert services.ledger.add_transactions(uid, transfer(make, a, b, 93)) == {a.id: 600, b.id: 93}
    record = IdempotencyRecord("b" * 64, "fp", 201, {"id": "x"}, datetime(2099, 1, 1, tzinfo=UTC))
    inputs = services.ledger.read_create_inputs(uid, b.id, [])
    assert services.ledger.add_transactions(uid, [make.txn(b, 7)], record, inputs) == {b.id: 100}
    # A transaction that moves no money leaves its account's balance as it was.
    assert services.ledger.add_transactions(uid, [make.txn(b, 0)]) == {b.id: 100}
    consistent(services, uid)


def test_an_edit_moves_balances_and_read_models(services: Services, make: Make) -> None:
    uid = make.user()
    a, b = make.account(uid), make.account(uid, name="Savings")
    food = make.category(uid)
    t = make.stored(uid, a, -500, date(2024, 1, 31))
    out, into = transfer(make, a, b, 700)
    services.ledger.add_transactions(uid, [out, into])

    def edit(txn: Transaction, cp: Transaction | None) -> tuple[Transaction, Transaction | None]:
        assert cp is None
        return replace(txn, amount=-800, date=date(2024, 2, 1), category_id=food.id), None

    old, new, old_cp, new_cp = services.ledger.update_transaction(uid, t.id, edit)
    assert (old, old_cp, new_cp) == (t, None, None)
    assert services.ledger.get_transaction(uid, t.id) == new
    # A transfer's side and its counterpart change together.
    moved = services.ledger.update_transaction(
        uid,
        into.id,
        lambda txn, cp: (replace(txn, amount=900), replace(cp, amount=-900) if cp else None),
    )
    assert moved[2] == out and moved[3] == replace(out, amount=-900)
    assert services.ledger.get_transaction(uid, out.id) == replace(out, amount=-900)
    consistent(services, uid)


def test_an_edit_that_raises_writes_nothing(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    t = make.stored(uid, account, -500)

    def refuse(txn: Transaction, cp: Transaction | None) -> tuple[Transaction, Transaction | None]:
        raise ValidationFailed.on("amount", "no")

    with pytest.raises(ValidationFailed):
        services.ledger.update_transaction(uid, t.id, refuse)
    assert services.ledger.get_transaction(uid, t.id) == t
    with pytest.raises(NotFound):
        services.ledger.update_transaction(uid, new_id(), lambda x, c: (x, c))
    consistent(services, uid)


def test_deleting_one_side_of_a_transfer_deletes_both(services: Services, make: Make) -> None:
    uid = make.user()
    a, b = make.account(uid), make.account(uid, name="Savings")
    out, into = transfer(make, a, b, 700)
    services.ledger.add_transactions(uid, [out, into])
    alone = make.stored(uid, a, -5)
    deleted = services.ledger.delete_transaction(uid, into.id)
    assert sorted(t.id for t in deleted) == sorted([out.id, into.id])
    assert [t.id for t in every(services, uid)] == [alone.id]
    with pytest.raises(NotFound):
        services.ledger.delete_transaction(uid, into.id)
    consistent(services, uid)


def test_lists_newest_first_filtered_and_paged(services: Services, make: Make) -> None:
    uid = make.user()
    a, b = make.account(uid), make.account(uid, name="Savings")
    food, rent = make.category(uid, "Food"), make.category(uid, "Rent")
    made = [make.txn(a, -100 - i, date(2024, 1, 1 + i)) for i in range(5)]
    made.append(make.txn(b, 50, date(2024, 1, 3), category_id=food.id))
    made.append(
        make.txn(a, -30, date(2024, 1, 3), splits=(Split(food.id, -10), Split(rent.id, -20)))
    )
    made.append(make.txn(a, -1, date(2024, 1, 2), import_id="k" + "0" * 31))
    services.ledger.add_transactions(uid, made)
    newest = sorted(made, key=lambda t: t.sort_key, reverse=True)

    seen: list[Transaction] = []
    cursor = None
    while True:
        page = services.ledger.list_transactions(uid, EVERYTHING, 3, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) == 3
    assert seen == newest

    def ids(flt: TransactionFilter) -> list[str]:
        return [t.id for t in services.ledger.list_transactions(uid, flt, 50, None).items]

    assert ids(TransactionFilter(account_id=b.id)) == [made[5].id]
    assert ids(TransactionFilter(category_id=rent.id)) == [made[6].id]
    assert set(ids(TransactionFilter(category_id=food.id))) == {made[5].id, made[6].id}
    assert ids(TransactionFilter(type="credit")) == [made[5].id]
    assert ids(TransactionFilter(import_id="k" + "0" * 31)) == [made[7].id]
    day = [t.id for t in newest if t.date == date(2024, 1, 3)]
    assert ids(TransactionFilter(date_from="2024-01-03", date_to="2024-01-03")) == day
    small = TransactionFilter(predicate=lambda t: abs(t.amount) < 60)
    assert ids(small) == [t.id for t in newest if abs(t.amount) < 60]


def test_a_cursor_is_checked(services: Services, make: Make) -> None:
    uid = make.user()
    for bad in ("not-base64!", encode_cursor("2024-01-01#../x"), encode_cursor("x")):
        with pytest.raises(ValidationFailed) as refused:
            services.ledger.list_transactions(uid, EVERYTHING, 10, bad)
        assert refused.value.errors[0].field == "cursor"


def test_a_filtered_page_scans_a_bounded_number(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    # SCAN_LIMIT + 5 transactions of one day (one month, one account: 400 per batch).
    made = [make.txn(account, -1 - i, date(2024, 1, 10)) for i in range(SCAN_LIMIT + 5)]
    for start in range(0, len(made), 400):
        services.ledger.add_transactions(uid, made[start : start + 400])
    oldest = min(made, key=lambda t: t.sort_key)
    needle = TransactionFilter(predicate=lambda t: t.id == oldest.id)
    first = services.ledger.list_transactions(uid, needle, 10, None)
    assert first.items == [] and first.next_cursor is not None  # gave up, said where
    rest = services.ledger.list_transactions(uid, needle, 10, first.next_cursor)
    assert rest.items == [oldest] and rest.next_cursor is None


def test_a_short_text_reads_the_index(services: Services, make: Make) -> None:
    """A q of 1 or 2 characters (once folded) is as index-backed as a longer one: its rare
    matches behind more than SCAN_LIMIT newer transactions come back in one request."""
    uid = make.user()
    account = make.account(uid)
    food = make.category(uid)
    # The newest SCAN_LIMIT + 5 hold neither "a" nor "j" ("Coffee"): 400 per batch. Of the
    # older, "Sal" holds "a" but not "ja", "Sol" neither.
    newer = [make.txn(account, -1 - i, date(2024, 1, 10)) for i in range(SCAN_LIMIT + 5)]
    older = [
        make.txn(
            account,
            -1 - i,
            date(2024, 1, 1 + i % 5),
            description="Açaí Já" if i % 2 else "Sal" if i % 4 == 0 else "Sol",
            category_id=food.id if i % 3 else None,
        )
        for i in range(24)
    ]
    made = newer + older
    for start in range(0, len(made), 400):
        services.ledger.add_transactions(uid, made[start : start + 400])

    for flt in (
        TransactionFilter(text=TextQuery.of("Á")),
        TransactionFilter(text=TextQuery.of("JÁ")),
        TransactionFilter(text=TextQuery.of("a"), category_id=food.id),
        TransactionFilter(text=TextQuery.of("ja"), category_id=food.id),
    ):
        wanted = brute_force(made, flt)
        assert 5 < len(wanted) < 24
        page = services.ledger.list_transactions(uid, flt, 5, None)
        assert page.items == wanted[:5] and page.next_cursor is not None
        whole = services.ledger.list_transactions(uid, flt, 50, None)
        assert whole.items == wanted and whole.next_cursor is None


def test_money_limits_refuse_the_whole_write(services: Services, make: Make) -> None:
    uid = make.user()
    rich = make.account(uid, opening_balance=SAFE_MAX - 10, balance=SAFE_MAX - 10)
    poor = make.account(uid, name="Other")
    with pytest.raises(OutOfSafeRange):
        services.ledger.add_transactions(uid, [make.txn(poor, 5), make.txn(rich, 11)])
    assert every(services, uid) == []
    services.ledger.add_transactions(uid, [make.txn(rich, 10)])
    with pytest.raises(OutOfSafeRange):
        services.ledger.check_limits(uid, LedgerReach({rich.id: Reach.of(1)}))
    services.ledger.check_limits(uid, LedgerReach({rich.id: Reach.of(-1)}))
    consistent(services, uid)


def test_a_create_reads_what_the_separate_reads_did(services: Services, make: Make) -> None:
    """read_create_inputs answers as get_account, get_categories and get_totals would."""
    uid = make.user()
    account = make.account(uid)
    food, rent = make.category(uid), make.category(uid, "Rent")
    make.stored(uid, account, -700, category_id=food.id)
    stranger = make.user()
    theirs = make.category(stranger, "Theirs")
    asked = [food.id, rent.id, theirs.id, new_id()]
    inputs = services.ledger.read_create_inputs(uid, account.id, asked)
    assert inputs.account == services.account_store.get_account(uid, account.id)
    assert inputs.categories == set(services.category_store.get_categories(uid, asked))
    assert inputs.categories == {food.id, rent.id}
    assert prune(inputs.totals) == prune(services.ledger.get_totals(uid))
    assert prune(inputs.totals) != {}
    # Absent, another user's, or being deleted: no account, as get_account says.
    assert services.ledger.read_create_inputs(uid, new_id(), []).account is None
    assert services.ledger.read_create_inputs(stranger, account.id, []).account is None
    services.account_store.hide_account(uid, account.id, NOW)
    hidden = services.ledger.read_create_inputs(uid, account.id, [food.id])
    assert hidden.account is None and hidden.categories == {food.id}


def test_a_create_with_its_inputs_keeps_the_money_limits(services: Services, make: Make) -> None:
    uid = make.user()
    rich = make.account(uid, opening_balance=SAFE_MAX - 10, balance=SAFE_MAX - 10)
    inputs = services.ledger.read_create_inputs(uid, rich.id, [])
    with pytest.raises(OutOfSafeRange):
        services.ledger.add_transactions(uid, [make.txn(rich, 11)], None, inputs)
    assert every(services, uid) == []
    services.ledger.add_transactions(uid, [make.txn(rich, 10)], None, inputs)
    # All-time sums too: an expense that would take the currency's expense past the range.
    poor, other = make.account(uid, name="Poor"), make.account(uid, name="Other")
    make.stored(uid, poor, -(SAFE_MAX - 5))
    inputs = services.ledger.read_create_inputs(uid, other.id, [])
    with pytest.raises(OutOfSafeRange):
        services.ledger.add_transactions(uid, [make.txn(other, -6)], None, inputs)
    consistent(services, uid)


def test_text_amount_and_category_filters_read_the_index(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    food = make.category(uid)
    # More tokens than a transaction stores (MAX_TOKENS): stored as OVERFLOW, still found.
    long = "".join(chr(0x4E00 + i) for i in range(MAX_TOKENS + 3))
    made = [
        make.txn(account, -1_000, description="Padaria Pão de Açúcar"),
        make.txn(account, 999, description="PAO QUENTE", category_id=food.id),
        make.txn(account, -5, description=long, category_id=food.id),
        make.txn(account, 7, description="ﷺ"),
    ]
    services.ledger.add_transactions(uid, made)

    def ids(**over: Any) -> set[str]:
        page = services.ledger.list_transactions(uid, TransactionFilter(**over), 50, None)
        assert page.next_cursor is None
        return {t.id for t in page.items}

    pao = TextQuery.of("pão")
    assert ids(text=pao) == {made[0].id, made[1].id}
    assert ids(text=pao, category_id=food.id) == {made[1].id}
    assert ids(text=TextQuery.of(long[500:510])) == {made[2].id}
    assert ids(text=TextQuery.of(long[900:903]), category_id=food.id) == {made[2].id}
    assert ids(text=TextQuery.of("صلى الله")) == {made[3].id}  # what "ﷺ" folds to
    assert ids(text=TextQuery.of("p")) == {made[0].id, made[1].id}  # a unigram
    assert ids(text=TextQuery.of("PÃ")) == {made[0].id, made[1].id}  # a bigram
    assert ids(text=TextQuery.of(long[7]), category_id=food.id) == {made[2].id}
    # Folds to nothing (a lone combining accent): in every description, as a substring is.
    assert ids(text=TextQuery.of("\u0301")) == {t.id for t in made}
    assert ids(min_magnitude=999, max_magnitude=1_000) == {made[0].id, made[1].id}
    assert ids(min_magnitude=6, max_magnitude=998) == {made[3].id}
    assert ids(max_magnitude=5, category_id=food.id) == {made[2].id}


# --- completeness of filtered pages -----------------------------------------------------------

WORDS = ("Padaria Pão de Açúcar", "UBER *TRIP", "café", "CAFE", "ﷺ", "Straße", "ß", "x", "ǅ")
amounts = st.one_of(
    st.integers(-(10**14), 10**14),
    st.integers(-200, 200),
    st.sampled_from([0, 1, -1, 10**14, -(10**14)]),
)
descriptions = st.one_of(
    st.text(min_size=1, max_size=60),
    st.text(min_size=8, max_size=60),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
)


def brute_force(txns: list[Transaction], flt: TransactionFilter) -> list[Transaction]:
    """The documented semantics of each filter, on every transaction, newest first."""

    def wanted(t: Transaction) -> bool:
        day = t.date.isoformat()
        return (
            flt.account_id in (None, t.account_id)
            and flt.type in (None, t.type.value)
            and flt.import_id in (None, t.import_id)
            and (flt.category_id is None or flt.category_id in t.category_ids)
            and (flt.date_from is None or day >= flt.date_from)
            and (flt.date_to is None or day <= flt.date_to)
            and (flt.min_magnitude is None or abs(t.amount) >= flt.min_magnitude)
            and (flt.max_magnitude is None or abs(t.amount) <= flt.max_magnitude)
            and (flt.text is None or flt.text.needle in fold(t.description))
        )

    return sorted(filter(wanted, txns), key=lambda t: t.sort_key, reverse=True)


@st.composite
def ledgers(draw: st.DrawFn, make: Make) -> tuple[str, list[Transaction], list[str]]:
    """A new user with transactions of any description and amount, in 2 accounts and 3
    categories (splits included), over a few days (equal dates page by id)."""
    uid = make.user()
    accounts = [make.account(uid), make.account(uid, name="Savings")]
    categories = [make.category(uid, f"C{i}").id for i in range(3)]
    maybe_category = st.none() | st.sampled_from(categories)
    txns = []
    for _ in range(draw(st.integers(0, 25))):
        amount = draw(amounts)
        split = draw(st.booleans()) and amount != 0
        txns.append(
            make.txn(
                draw(st.sampled_from(accounts)),
                amount,
                date(2024, 1, draw(st.integers(1, 4))),
                description=draw(descriptions),
                category_id=None if split else draw(maybe_category),
                splits=(Split(draw(maybe_category), amount - 1), Split(draw(maybe_category), 1))
                if split
                else (),
                import_id=draw(st.sampled_from([None, "k" + "0" * 31])),
            )
        )
    make.services.ledger.add_transactions(uid, txns)
    return uid, txns, categories


@st.composite
def filters(draw: st.DrawFn, txns: list[Transaction], categories: list[str]) -> TransactionFilter:
    """Each field set one time in three, mostly to a value that one of the transactions
    passes (its account, a category of it, a piece of its description, its magnitude or one
    next to it), so that combinations of filters still match something."""
    target = draw(st.sampled_from(txns)) if txns else None

    def maybe(near: Any, anything: st.SearchStrategy[Any]) -> Any:
        if draw(st.integers(0, 2)) != 0:
            return None
        return draw(anything) if draw(st.integers(0, 3)) == 0 else near

    def piece(t: Transaction) -> str:
        start = draw(st.integers(0, len(t.description) - 1))
        return t.description[start : start + draw(st.integers(1, 12) | st.integers(3, 8))]

    days = st.integers(1, 4).map(lambda d: date(2024, 1, d).isoformat())
    size = abs(target.amount) if target else 0
    low = maybe(size - draw(st.integers(0, 1)), amounts.map(abs))
    high = maybe(size + draw(st.integers(0, 1)), amounts.map(abs))
    if low is not None and high is not None and low > high:
        low, high = high, low
    text = maybe(piece(target) if target else None, st.text(min_size=1, max_size=6))
    return TransactionFilter(
        account_id=maybe(target and target.account_id, st.just("0" * 32)),
        category_id=maybe(
            draw(st.sampled_from(target.category_ids)) if target and target.category_ids else None,
            st.sampled_from(categories),
        ),
        date_from=maybe(target and target.date.isoformat(), days),
        date_to=maybe(target and target.date.isoformat(), days),
        type=maybe(target and target.type.value, st.sampled_from(["debit", "credit"])),
        import_id=maybe(target and target.import_id, st.just("k" + "0" * 31)),
        min_magnitude=max(low, 0) if low is not None else None,
        max_magnitude=max(high, 0) if high is not None else None,
        text=TextQuery.of(text) if text and text.strip() else None,
    )


def test_every_page_of_a_filter_together_is_the_filter_of_everything(
    services: Services, make: Make, backend: str
) -> None:
    """Paging through a filter, every filter and combination: exactly the transactions a
    brute-force filter keeps, in the list's order, none twice, none left out."""

    @settings(
        max_examples=60 if backend == "fake" else 25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        uid, txns, categories = data.draw(ledgers(make))
        for _ in range(5):
            flt = data.draw(filters(txns, categories))
            limit = data.draw(st.integers(1, 6))
            seen: list[Transaction] = []
            cursor = None
            for _ in range(len(txns) + 2):
                page = services.ledger.list_transactions(uid, flt, limit, cursor)
                assert len(page.items) <= limit
                seen += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert cursor is None
            assert [t.id for t in seen] == [t.id for t in brute_force(txns, flt)]

    check()


def test_racing_creates_each_answer_the_balance_their_own_commit_left(
    services: Services, make: Make
) -> None:
    """Eight writers at once on one account: the balances they answer are the eight steps
    the account went through, each once, and the last is the balance stored."""
    from concurrent.futures import ThreadPoolExecutor

    uid = make.user()
    account = make.account(uid, name="Conta ☕ / ‮x", opening_balance=1_000, balance=1_000)
    made = [make.txn(account, -10) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: services.ledger.add_transactions(uid, [t]), made))
    seen = sorted(a[account.id] for a in answers)
    assert seen == [1_000 - 10 * k for k in range(8, 0, -1)]
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None and stored.balance == seen[0] == 920
    consistent(services, uid)
