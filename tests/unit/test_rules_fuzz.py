"""Rule patterns fuzzed (issue 12, hostile input): any text a user sends as a `matches`
pattern is either a rule that runs or a 422 naming the field, never another error; and a rule
that was accepted runs on any description without raising. Patterns are drawn from regex
syntax (so many compile) and from arbitrary Unicode (so many do not)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.unit.test_rules import NOW, rule, txn
from valorize.domain.errors import ValidationFailed
from valorize.domain.rules import AddNote, DescriptionMatches, apply_rules
from valorize.service.requests.rules import CreateRule

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
SYNTAX = st.lists(
    st.sampled_from(
        [
            "a",
            "é",
            "\\s",
            "\\b",
            "\\pL",
            "\\d",
            ".",
            "*",
            "+",
            "?",
            "{2,}",
            "{1000}",
            "(",
            ")",
            "(?:",
            "|",
            "[",
            "]",
            "[^a]",
            "^",
            "$",
            "\\",
            "(?=x)",
            "\\1",
            "(?P<n>",
            "*+",
            "{,3}",
            "[[:alpha:]]",
            "\x00",
            "💸",
        ]
    ),
    max_size=30,
).map("".join)
PATTERNS = st.one_of(SYNTAX, st.text(max_size=250))


@FUZZ
@given(PATTERNS, st.text(max_size=255))
def test_a_pattern_is_a_rule_that_runs_or_a_field_error(pattern: str, description: str) -> None:
    try:
        condition = DescriptionMatches(pattern)
    except ValidationFailed as refused:
        assert [e.field for e in refused.errors] == ["value"]
        return
    applied = apply_rules([rule("r", condition, AddNote("n"))], txn(description=description))
    assert applied[1] in ([], ["r"])


@FUZZ
@given(PATTERNS)
def test_the_api_answers_any_pattern_with_a_rule_or_a_422(pattern: str) -> None:
    body = {
        "name": "fuzz",
        "conditions": [{"field": "description", "op": "matches", "value": pattern}],
        "actions": [{"action": "add_note", "value": "n"}],
    }
    try:
        CreateRule.model_validate(body).to_rule(rule_id="r", now=NOW)
    except ValidationError as refused:
        assert all(e["loc"][:2] == ("conditions", 0) for e in refused.errors()), refused
    except ValidationFailed as refused:
        assert [e.field for e in refused.errors] == ["conditions.0.value"]
