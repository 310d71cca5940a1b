"""Rules: conditions, actions, ordering, idempotence, RE2 patterns, the budget, the JSON shape."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from valorize.adapters.firestore.documents import rule_doc, rule_of
from valorize.adapters.firestore.rule_documents import action_of, condition_of
from valorize.domain.errors import ValidationFailed
from valorize.domain.model import Origin, Split, Transaction, TransactionType
from valorize.domain.rules import (
    SKIPPED_NOTE,
    AccountIn,
    Action,
    AddNote,
    AmountBetween,
    Condition,
    DescriptionContains,
    DescriptionMatches,
    DescriptionStartsWith,
    Match,
    RenameDescription,
    Rule,
    RuleSet,
    SetCategory,
    TypeIs,
    add_note,
    apply_rules,
    is_uncategorized,
    numbered,
    placed,
)
from valorize.domain.text import fold
from valorize.service.requests.rules import (
    ApplyRules,
    CreateRule,
    UpdateRule,
    rule_json,
)

# Ids of the form the API issues (the commands check it); names for reading.
ACC1, ACC2, ACC3 = "a1" * 16, "a2" * 16, "a3" * 16
FOOD, FUN, TRANSPORT = "f0" * 16, "f1" * 16, "7a" * 16

NOW = datetime(2025, 1, 1, 12, 0)
FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def txn(
    description: str = "UBER *TRIP",
    amount: int = -2500,
    *,
    account_id: str = ACC1,
    category_id: str | None = None,
    notes: str | None = None,
    splits: tuple[Split, ...] = (),
    transfer_id: str | None = None,
) -> Transaction:
    return Transaction(
        id="t1",
        account_id=account_id,
        amount=amount,
        currency="BRL",
        date=date(2025, 1, 10),
        description=description,
        created_at=NOW,
        updated_at=NOW,
        category_id=category_id,
        notes=notes,
        splits=splits,
        origin=Origin.IMPORT,
        transfer_id=transfer_id,
    )


def rule(
    rule_id: str,
    conditions: list[Condition] | Condition,
    actions: list[Action] | Action,
    *,
    position: int = 0,
    match: Match = Match.ALL,
    stop: bool = False,
    enabled: bool = True,
) -> Rule:
    return Rule(
        id=rule_id,
        name=rule_id,
        position=position,
        conditions=tuple(conditions) if isinstance(conditions, list) else (conditions,),
        actions=tuple(actions) if isinstance(actions, list) else (actions,),
        created_at=NOW,
        updated_at=NOW,
        enabled=enabled,
        match=match,
        stop=stop,
    )


def category_after(rules: list[Rule], t: Transaction) -> str | None:
    return apply_rules(rules, t)[0].category_id


# --- conditions -------------------------------------------------------------------------------


class TestConditions:
    def test_contains_is_case_accent_and_space_insensitive(self) -> None:
        r = rule("r", DescriptionContains("café  do joão"), SetCategory(FOOD))
        assert category_after([r], txn("PAG*CAFE DO   JOAO LTDA")) == FOOD
        assert category_after([r], txn("cafe do maria")) is None

    def test_starts_with(self) -> None:
        r = rule("r", DescriptionStartsWith("pix "), SetCategory("pix"))
        assert category_after([r], txn("  PIX  Enviado Maria")) == "pix"
        assert category_after([r], txn("Recebido PIX")) is None

    def test_regex_searches_the_folded_description(self) -> None:
        r = rule("r", DescriptionMatches(r"^uber\s*\*?\s*trip\b"), SetCategory(TRANSPORT))
        assert category_after([r], txn("UBER * TRIP 1234")) == TRANSPORT
        assert category_after([r], txn("UBERTRIPX")) is None
        assert category_after([r], txn("EATS UBER TRIP")) is None

    def test_regex_with_accents_in_the_pattern(self) -> None:
        r = rule("r", DescriptionMatches("farmácia|drogaria"), SetCategory("health"))
        assert category_after([r], txn("FARMACIA SAO JOAO")) == "health"
        assert category_after([r], txn("Farmácia Pague Menos")) == "health"

    def test_amount_range_is_on_the_magnitude(self) -> None:
        r = rule("r", AmountBetween(1000, 5000), SetCategory("mid"))
        assert category_after([r], txn(amount=-5000)) == "mid"
        assert category_after([r], txn(amount=1000)) == "mid"
        assert category_after([r], txn(amount=-999)) is None
        assert category_after([r], txn(amount=5001)) is None
        only_min = rule("r", AmountBetween(minimum=100_00), SetCategory("big"))
        assert category_after([only_min], txn(amount=-(10**9))) == "big"

    def test_account_and_type(self) -> None:
        r = rule(
            "r",
            [AccountIn(frozenset({ACC1, ACC2})), TypeIs(TransactionType.CREDIT)],
            SetCategory("income"),
        )
        assert category_after([r], txn(amount=100, account_id=ACC2)) == "income"
        assert category_after([r], txn(amount=-100, account_id=ACC2)) is None
        assert category_after([r], txn(amount=100, account_id=ACC3)) is None

    def test_match_any(self) -> None:
        conds: list[Condition] = [DescriptionContains("ifood"), DescriptionContains("rappi")]
        any_rule = rule("r", conds, SetCategory(FOOD), match=Match.ANY)
        all_rule = rule("r", conds, SetCategory(FOOD), match=Match.ALL)
        assert category_after([any_rule], txn("RAPPI*BR")) == FOOD
        assert category_after([all_rule], txn("RAPPI*BR")) is None

    @pytest.mark.parametrize(
        ("build", "field"),
        [
            (lambda: DescriptionContains("   "), "value"),
            (lambda: DescriptionMatches("(unclosed"), "value"),
            (lambda: DescriptionMatches("x" * 201), "value"),
            (lambda: AmountBetween(), "value"),
            (lambda: AmountBetween(-1, 5), "value.min"),
            (lambda: AmountBetween(10, 5), "value.max"),
            (lambda: AccountIn(frozenset()), "value"),
        ],
    )
    def test_invalid_conditions(self, build: object, field: str) -> None:
        with pytest.raises(ValidationFailed) as e:
            build()  # type: ignore[operator]
        assert e.value.errors[0].field == field

    def test_a_rule_needs_conditions_and_actions(self) -> None:
        with pytest.raises(ValidationFailed, match="conditions"):
            rule("r", [], SetCategory("c"))
        with pytest.raises(ValidationFailed, match="actions"):
            rule("r", DescriptionContains("x"), [])
        with pytest.raises(ValidationFailed) as e:
            rule("r", DescriptionContains("x"), [SetCategory("a"), SetCategory("b")])
        assert e.value.errors[0].field == "actions.1"


# --- ordering and actions ---------------------------------------------------------------------


class TestOrdering:
    def test_all_matching_rules_run_in_position_order_and_the_last_wins(self) -> None:
        general = rule("general", DescriptionContains("uber"), SetCategory(TRANSPORT), position=1)
        eats = rule("eats", DescriptionContains("uber eats"), SetCategory(FOOD), position=2)
        for rules in ([general, eats], [eats, general]):
            out, applied = apply_rules(rules, txn("UBER EATS 123"))
            assert out.category_id == FOOD
            assert applied == ["general", "eats"]
        assert category_after([general, eats], txn("UBER TRIP")) == TRANSPORT

    def test_ties_are_broken_by_id(self) -> None:
        a = rule("a", DescriptionContains("uber"), SetCategory("from-a"))
        b = rule("b", DescriptionContains("uber"), SetCategory("from-b"))
        assert category_after([b, a], txn()) == "from-b"

    def test_stop_gives_first_match_wins(self) -> None:
        first = rule("first", DescriptionContains("uber"), SetCategory("x"), position=1, stop=True)
        later = rule("later", DescriptionContains("uber"), SetCategory("y"), position=2)
        out, applied = apply_rules([first, later], txn())
        assert (out.category_id, applied) == ("x", ["first"])

    def test_disabled_rules_do_not_run(self) -> None:
        off = rule("off", DescriptionContains("uber"), SetCategory("x"), enabled=False)
        assert apply_rules([off], txn()) == (txn(), [])

    def test_a_rename_feeds_later_rules(self) -> None:
        rename = rule("rename", DescriptionMatches(r"^pag\*uber"), RenameDescription("Uber"))
        categorise = rule("cat", DescriptionStartsWith("uber"), SetCategory(TRANSPORT), position=1)
        out, _ = apply_rules([rename, categorise], txn("PAG*UBER TRIP 99"))
        assert (out.description, out.category_id) == ("Uber", TRANSPORT)

    def test_a_rename_feeds_earlier_rules_too_so_the_result_is_stable(self) -> None:
        categorise = rule("cat", DescriptionContains("netflix"), SetCategory(FUN), position=0)
        rename = rule(
            "rename", DescriptionContains("nflx"), RenameDescription("Netflix"), position=1
        )
        once, applied = apply_rules([categorise, rename], txn("NFLX.COM 123"))
        assert (once.description, once.category_id) == ("Netflix", FUN)
        assert applied == ["rename", "cat"]
        assert apply_rules([categorise, rename], once)[0] == once

    def test_renames_that_return_within_a_pass_are_a_fixed_point(self) -> None:
        to_b = rule("to-b", DescriptionContains("alpha"), RenameDescription("beta"))
        to_a = rule("to-a", DescriptionContains("beta"), RenameDescription("alpha"), position=1)
        outcome = RuleSet([to_b, to_a]).apply(txn("alpha"))
        assert not outcome.rename_loop and not outcome.changed
        assert outcome.applied == ("to-b", "to-a")

    def test_a_rename_loop_across_passes_keeps_the_description_and_is_reported(self) -> None:
        # alpha -> beta in one pass, beta -> gamma -> alpha in the next: no fixed point.
        rules = [
            rule("b-to-g", DescriptionContains("beta"), RenameDescription("gamma"), position=0),
            rule("a-to-b", DescriptionContains("alpha"), RenameDescription("beta"), position=1),
            rule("g-to-a", DescriptionContains("gamma"), RenameDescription("alpha"), position=2),
            rule("tag", DescriptionContains("alpha"), AddNote("looped"), position=3),
        ]
        outcome = RuleSet(rules).apply(txn("alpha"))
        assert outcome.rename_loop
        assert outcome.transaction.description == "alpha"
        assert outcome.transaction.notes == "looped"
        assert RuleSet(rules).apply(outcome.transaction).transaction == outcome.transaction

    def test_add_note_appends_once(self) -> None:
        r = rule("r", DescriptionContains("uber"), [AddNote("work"), AddNote("reimburse")])
        once, _ = apply_rules([r], txn(notes="Trip to client"))
        assert once.notes == "Trip to client\nwork\nreimburse"
        assert apply_rules([r], once)[0].notes == once.notes
        assert add_note("WORK\nother", "work") == "WORK\nother"
        assert add_note(None, "work") == "work"
        assert add_note("x" * 498, "work") is None  # would not fit: left out

    def test_set_category_skips_split_transactions(self) -> None:
        splits = (Split(FOOD, -1500), Split(FUN, -1000))
        r = rule("r", DescriptionContains("uber"), [SetCategory(TRANSPORT), AddNote("n")])
        out, applied = apply_rules([r], txn(splits=splits))
        assert (out.category_id, out.splits, out.notes, applied) == (None, splits, "n", ["r"])

    def test_transfers_are_never_touched(self) -> None:
        r = rule("r", DescriptionContains("uber"), SetCategory(TRANSPORT))
        t = txn(transfer_id="tr1")
        assert apply_rules([r], t) == (t, [])

    def test_nothing_matching_changes_nothing(self) -> None:
        r = rule("r", DescriptionContains("netflix"), SetCategory(FUN))
        outcome = RuleSet([r]).apply(txn())
        assert not outcome.changed and outcome.applied == ()

    def test_uncategorized(self) -> None:
        assert is_uncategorized(txn())
        assert not is_uncategorized(txn(category_id="c"))
        assert not is_uncategorized(txn(splits=(Split("a", -1), Split("b", -2499))))


# --- RE2 and the budget ----------------------------------------------------------------------


class Ticks:
    """A timer that advances one unit per reading: the budget in readings, no wall clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


class TestPatterns:
    """Patterns run in RE2 (linear time): the backtracking class is gone, not timed out."""

    @pytest.mark.parametrize(
        ("pattern", "matching", "not_matching"),
        [
            ("(a|aa)+$", "xaaaa", "a" * 200 + "!"),
            ("(x+x+)+y", "xxxxy", "x" * 200),
            ("(?:.*a){12}b", "a" * 12 + "b", "a" * 200),
            ("^(a*)*$", "a" * 200, "a" * 200 + "!"),
        ],
    )
    def test_a_pattern_that_backtracks_elsewhere_is_accepted_and_means_the_same(
        self, pattern: str, matching: str, not_matching: str
    ) -> None:
        # The non-matching inputs are the ones that take a backtracking engine (Python's re)
        # longer than the age of the universe.
        r = rule("r", DescriptionMatches(pattern), SetCategory(FOOD))
        assert category_after([r], txn(matching)) == FOOD
        assert category_after([r], txn(not_matching)) is None

    @pytest.mark.parametrize(
        "pattern",
        [r"(a)\1", r"(?<=pix )uber", r"(?<!x)a", r"(?=a)a", r"(?!a)b", "a++", "(?>a)", "a{1001}"],
    )
    def test_what_only_a_backtracking_engine_runs_is_refused_on_value(self, pattern: str) -> None:
        with pytest.raises(ValidationFailed) as e:
            DescriptionMatches(pattern)
        assert [f.field for f in e.value.errors] == ["value"]
        assert "RE2" in e.value.errors[0].message

    def test_a_pattern_too_big_to_compile_is_refused(self) -> None:
        with pytest.raises(ValidationFailed):
            DescriptionMatches("(" + "[a-z]{1000}" * 18 + ")")

    def test_matching_is_case_and_accent_insensitive_and_unicode(self) -> None:
        r = rule("r", DescriptionMatches("^café\\s+\\pL+$"), SetCategory(FOOD))
        assert category_after([r], txn("CAFE  ÀRVORE")) == FOOD
        assert category_after([r], txn("café 北京")) == FOOD
        assert category_after([r], txn("cafe 123")) is None


class TestBudget:
    def test_rules_past_the_budget_are_skipped_and_reported(self) -> None:
        heard = []
        rules = [
            rule(f"r{i}", DescriptionContains("uber"), AddNote(f"n{i}"), position=i)
            for i in range(10)
        ]
        # Ticks: one reading starts the run, one per rule evaluated; the budget allows 3.
        ruleset = RuleSet(rules, budget=4, timer=Ticks(), on_skipped=heard.append)
        outcome = ruleset.apply(txn())
        assert outcome.applied == ("r0", "r1", "r2")
        assert outcome.skipped == tuple(f"r{i}" for i in range(3, 10))
        assert outcome.transaction.notes == f"n0\nn1\nn2\n{SKIPPED_NOTE}"
        assert heard == [outcome]
        # Applied again (an on-demand run), the note is not repeated.
        again = RuleSet(rules, budget=4, timer=Ticks()).apply(outcome.transaction)
        assert again.transaction.notes == outcome.transaction.notes

    def test_the_budget_is_per_transaction(self) -> None:
        rules = [rule(f"r{i}", DescriptionContains("uber"), AddNote(f"n{i}")) for i in range(5)]
        ruleset = RuleSet(rules, budget=100, timer=Ticks())
        for _ in range(50):
            assert ruleset.apply(txn()).skipped == ()

    def test_a_rename_loop_cut_by_the_budget_keeps_a_consistent_result(self) -> None:
        to_b = rule("to_b", DescriptionContains("alpha"), RenameDescription("beta"))
        to_a = rule("to_a", DescriptionContains("beta"), RenameDescription("alpha"), position=1)
        outcome = RuleSet([to_b, to_a], budget=2, timer=Ticks()).apply(txn("alpha"))
        assert outcome.skipped == ("to_a",)
        assert outcome.transaction.description == "beta"

    def test_within_the_budget_nothing_is_skipped_or_reported(self) -> None:
        heard = []
        r = rule("r", DescriptionMatches("(a|aa)+$"), SetCategory(FOOD))
        outcome = RuleSet([r], on_skipped=heard.append).apply(txn("aaaa"))
        assert outcome.skipped == () and heard == []


# --- properties -------------------------------------------------------------------------------

WORDS = ["uber", "ifood", "pix", "netflix", "rent", "café"]
descriptions = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
conditions: st.SearchStrategy[Condition] = st.one_of(
    st.sampled_from(WORDS).map(DescriptionContains),
    st.sampled_from(WORDS).map(DescriptionStartsWith),
    st.sampled_from(["^ub", "fli?x$", r"\bpix\b", "cafe|rent"]).map(DescriptionMatches),
    st.tuples(st.none() | st.integers(0, 5000), st.none() | st.integers(5000, 10_000))
    .filter(lambda b: b != (None, None))
    .map(lambda b: AmountBetween(*b)),
    st.sets(st.sampled_from([ACC1, ACC2]), min_size=1).map(lambda s: AccountIn(frozenset(s))),
    st.sampled_from(TransactionType).map(TypeIs),
)
actions: st.SearchStrategy[Action] = st.one_of(
    st.sampled_from([FOOD, FUN, TRANSPORT]).map(SetCategory),
    (st.sampled_from(WORDS) | descriptions).map(RenameDescription),
    st.sampled_from(["work", "Work", "trip"]).map(AddNote),
)


@st.composite
def rules_lists(draw: st.DrawFn) -> list[Rule]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        acts: list[Action] = []
        for a in draw(st.lists(actions, min_size=1, max_size=3)):
            # One set_category and one rename per rule at most.
            if isinstance(a, AddNote) or all(type(b) is not type(a) for b in acts):
                acts.append(a)
        out.append(
            rule(
                f"r{i}",
                draw(st.lists(conditions, min_size=1, max_size=3)),
                acts,
                position=draw(st.integers(0, 3)),
                match=draw(st.sampled_from(Match)),
                stop=draw(st.booleans()),
                enabled=draw(st.booleans() | st.just(True)),
            )
        )
    return out


transactions = st.builds(
    txn,
    descriptions,
    st.integers(-10_000, 10_000).filter(bool),
    account_id=st.sampled_from([ACC1, ACC2, ACC3]),
    category_id=st.none() | st.sampled_from([FOOD, "other"]),
    notes=st.none() | st.sampled_from(["work", "old note"]),
)


@FAST
@given(rules_lists(), transactions)
def test_applying_twice_is_applying_once(rules: list[Rule], t: Transaction) -> None:
    once, _ = apply_rules(rules, t)
    twice, _ = apply_rules(rules, once)
    assert twice == once


@FAST
@given(rules_lists(), transactions, st.randoms(use_true_random=False))
def test_the_order_rules_are_given_in_does_not_matter(
    rules: list[Rule], t: Transaction, rnd: random.Random
) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)
    assert apply_rules(shuffled, t) == apply_rules(rules, t)


@FAST
@given(rules_lists(), transactions)
def test_rules_touch_only_category_description_and_notes(rules: list[Rule], t: Transaction) -> None:
    out, applied = apply_rules(rules, t)
    assert replace(out, category_id=t.category_id, description=t.description, notes=t.notes) == t
    assert set(applied) <= {r.id for r in rules if r.enabled}
    if t.notes:
        assert out.notes is not None and out.notes.startswith(t.notes)
    if out.notes:
        lines = [fold(x) for x in out.notes.splitlines()]
        assert len(lines) == len(set(lines))  # a note is never added twice


@FAST
@given(rules_lists())
def test_stored_shape_round_trips(rules: list[Rule]) -> None:
    for r in rules:
        doc = rule_doc(r)
        stored = json.loads(json.dumps({k: doc[k] for k in ("conditions", "actions")}))
        assert tuple(condition_of(c) for c in stored["conditions"]) == r.conditions
        assert tuple(action_of(a) for a in stored["actions"]) == r.actions
        # The shape every stored document holds: what the API first showed.
        assert stored["conditions"] == rule_json(r)["conditions"]


def test_a_stored_rule_the_api_would_now_refuse_is_still_read() -> None:
    # The store reads its documents itself: a request model that has since changed (here,
    # one refusing a field an older version stored) must not make stored rules unreadable.
    conditions = [{"field": "description", "op": "contains", "value": "uber", "case": "any"}]
    actions = [{"action": "add_note", "value": "ride"}]
    with pytest.raises(ValidationError):
        CreateRule.model_validate({"name": "x", "conditions": conditions, "actions": actions})
    doc = {
        "name": "old",
        "rank": "a0",
        "conditions": conditions,
        "actions": actions,
        "created_at": NOW,
        "updated_at": NOW,
    }
    rule = rule_of("r1", doc)
    assert rule.conditions == (DescriptionContains("uber"),)


# --- commands (the public JSON) ---------------------------------------------------------------

EXAMPLE = {
    "name": "Uber rides",
    "match": "all",
    "conditions": [
        {"field": "description", "op": "contains", "value": "uber"},
        {"field": "description", "op": "matches", "value": r"trip\s*\d+"},
        {"field": "amount", "op": "between", "value": {"max": 10000}},
        {"field": "type", "op": "is", "value": "debit"},
        {"field": "account_id", "op": "in", "value": [ACC1]},
    ],
    "actions": [
        {"action": "set_category", "value": TRANSPORT},
        {"action": "rename_description", "value": "Uber"},
        {"action": "add_note", "value": "ride"},
    ],
    "stop": False,
}


def create(body: dict[str, object]) -> Rule:
    return CreateRule.model_validate_json(json.dumps(body)).to_rule(rule_id="r1", now=NOW)


class TestCommands:
    def test_the_documented_example(self) -> None:
        r = create(EXAMPLE)
        assert r.position == 0 and r.enabled and r.match is Match.ALL
        out, applied = apply_rules([r], txn("PAG*UBER TRIP 42", -2390))
        assert (out.description, out.category_id, out.notes, applied) == (
            "Uber",
            TRANSPORT,
            "ride",
            ["r1"],
        )
        shown = rule_json(r)
        assert shown["conditions"] == EXAMPLE["conditions"]
        assert shown["actions"] == EXAMPLE["actions"]

    def test_a_bad_regex_is_a_validation_error_naming_the_condition(self) -> None:
        body = {
            **EXAMPLE,
            "conditions": [
                EXAMPLE["conditions"][0],
                {  # type: ignore[index]
                    "field": "description",
                    "op": "matches",
                    "value": "([a-z]+",
                },
            ],
        }
        with pytest.raises(ValidationFailed) as e:
            create(body)
        assert e.value.status == 422
        assert [f.field for f in e.value.errors] == ["conditions.1.value"]
        assert "regular expression" in e.value.errors[0].message

    @pytest.mark.parametrize(
        "condition",
        [
            {"field": "description", "op": "equals", "value": "x"},
            {"field": "memo", "op": "contains", "value": "x"},
            {"field": "description", "op": "matches", "value": "x" * 201},
            {"field": "description", "op": "contains", "value": "   "},
            {"field": "amount", "op": "between", "value": {"min": -1}},
            {"field": "amount", "op": "between", "value": {"min": 1.5}},
            {"field": "type", "op": "is", "value": "transfer"},
            {"field": "account_id", "op": "in", "value": []},
            {"field": "description", "op": "contains", "value": "x", "extra": 1},
        ],
    )
    def test_shape_errors(self, condition: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            create({**EXAMPLE, "conditions": [condition]})

    def test_empty_lists_are_refused(self) -> None:
        with pytest.raises(ValidationError):
            create({**EXAMPLE, "conditions": []})
        with pytest.raises(ValidationError):
            create({**EXAMPLE, "actions": []})

    def test_update_replaces_lists_and_revalidates(self) -> None:
        r = create(EXAMPLE)
        later = datetime(2025, 2, 1)
        patch = UpdateRule.model_validate_json(
            '{"enabled": false, "conditions": [{"field": "type", "op": "is", "value": "credit"}]}'
        )
        updated = patch.apply_to(r, now=later)
        assert not updated.enabled and updated.conditions == (TypeIs(TransactionType.CREDIT),)
        assert (updated.actions, updated.created_at, updated.updated_at) == (
            r.actions,
            NOW,
            later,
        )
        bad = UpdateRule.model_validate_json(
            '{"conditions": [{"field": "description", "op": "matches", "value": "*"}]}'
        )
        with pytest.raises(ValidationFailed) as e:
            bad.apply_to(r, now=later)
        assert e.value.errors[0].field == "conditions.0.value"

    def test_apply_rules_filters(self) -> None:
        cmd = ApplyRules.model_validate_json(
            f'{{"account_id": "{ACC1}", "from": "2025-01-01", "to": "2025-01-31",'
            ' "only_uncategorized": true}'
        )
        cmd.check()
        assert cmd.selects(txn())
        assert not cmd.selects(txn(category_id="c"))
        assert not cmd.selects(txn(account_id=ACC2))
        assert not cmd.selects(txn(transfer_id="x"))
        backwards = ApplyRules.model_validate_json('{"from": "2025-02-01", "to": "2025-01-01"}')
        with pytest.raises(ValidationFailed):
            backwards.check()


# --- order: ranks between neighbours (what the store keeps) -----------------------------------

ORDER_OPS = st.lists(
    st.tuples(
        st.sampled_from(["create", "move", "delete"]),
        st.integers(0, 30),
        st.none() | st.integers(0, 30),
    ),
    max_size=60,
)


@FAST
@given(ORDER_OPS)
def test_ranks_place_rules_like_list_inserts_and_write_only_the_moved_rule(
    ops: list[tuple[str, int, int | None]],
) -> None:
    """Oracle: a Python list. Positions stay dense, and a create or move changes no other
    rule's rank."""
    stored: dict[str, Rule] = {}
    oracle: list[str] = []
    for n, (op, pick, index) in enumerate(ops):
        order = numbered(stored.values())
        if op == "create" or not oracle:
            new = rule(f"r{n:03d}", DescriptionContains("x"), AddNote("y"))
            others = order
            at = len(oracle) if index is None else min(index, len(oracle))
            oracle.insert(at, new.id)
        else:
            target = oracle[pick % len(oracle)]
            if op == "delete":
                oracle.remove(target)
                del stored[target]
                continue
            new = stored[target]
            others = [x for x in order if x.id != target]
            oracle.remove(target)
            at = len(oracle) if index is None else min(index, len(oracle))
            oracle.insert(at, target)
        before = {x.id: x.rank for x in others}
        stored[new.id] = placed(new, others, index)
        assert {x.id: x.rank for x in stored.values() if x.id != new.id} == before
        assert [x.id for x in numbered(stored.values())] == oracle
        assert [x.position for x in numbered(stored.values())] == list(range(len(oracle)))


def test_a_rule_placed_between_twins_goes_right_after_them() -> None:
    make = [rule(i, DescriptionContains("x"), AddNote("y")) for i in ("a", "b", "c", "d")]
    first = placed(make[0], [], None)
    # b and c were created at the same instant after a: the same rank, in id order.
    b, c = (placed(x, [first], None) for x in make[1:3])
    assert b.rank == c.rank
    d = placed(make[3], numbered([first, b, c]), 2)
    assert [x.id for x in numbered([first, b, c, d])] == ["a", "b", "c", "d"]
