"""domain/search.py: what a transaction stores and what a `q` asks the index for."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valorize.domain.search import MAX_TOKENS, OVERFLOW, TextQuery, scoped, tokens

CATEGORY = "c" * 32


def test_a_description_stores_its_distinct_unigrams_bigrams_and_trigrams() -> None:
    assert tokens("Pão Pão", []) == [
        *("p", "a", "o", " "),
        *("pa", "ao", "o ", " p"),
        *("pao", "ao ", "o p", " pa"),
    ]


def test_every_token_is_stored_again_under_each_category() -> None:
    own = tokens("Uber", [])
    assert tokens("Uber", [CATEGORY]) == own + [scoped(CATEGORY, t) for t in own]


def test_too_many_tokens_store_overflow_instead() -> None:
    # n distinct characters: n unigrams, n - 1 bigrams, n - 2 trigrams.
    long = "".join(chr(0x4E00 + i) for i in range(MAX_TOKENS // 3 + 2))
    assert tokens(long, []) == [OVERFLOW]
    assert tokens(long, [CATEGORY]) == [OVERFLOW, scoped(CATEGORY, OVERFLOW)]
    fits = long[: MAX_TOKENS // 6]
    assert OVERFLOW not in tokens(fits, [CATEGORY])


@pytest.mark.parametrize(
    ("q", "token"),
    [("Á", "a"), ("ß", "ss"), ("JÁ", "ja"), ("pão", "pao"), ("padaria", "pad")],
)
def test_a_query_asks_for_its_own_token_or_its_rarest_trigram(q: str, token: str) -> None:
    text = TextQuery.of(q)
    assert text.indexed
    assert text.tokens(None) == [token, OVERFLOW]
    assert text.tokens(CATEGORY) == [scoped(CATEGORY, token), scoped(CATEGORY, OVERFLOW)]


def test_a_query_that_folds_to_nothing_matches_everything_without_the_index() -> None:
    text = TextQuery.of("\u0301")  # a lone combining accent: fold removes it
    assert text.needle == "" and not text.indexed
    assert text.matches("Coffee") and text.matches("")
    with pytest.raises(ValueError):
        text.tokens(None)


# No deadline: the first example can build Hypothesis's Unicode tables on a loaded machine.
@settings(deadline=None)
@given(
    st.text(max_size=20),
    st.text(min_size=1, max_size=6),
    st.text(max_size=20),
    st.sampled_from([None, CATEGORY]),
)
def test_a_match_always_holds_a_token_the_query_asks_for(
    before: str, q: str, after: str, category_id: str | None
) -> None:
    """The index never loses a match: whatever the query's length, a description that
    contains it (folded) stores one of the tokens the query asks for."""
    text, description = TextQuery.of(q), before + q + after
    if not text.indexed or not text.matches(description):
        return
    stored = tokens(description, [CATEGORY])
    assert set(text.tokens(category_id)) & set(stored)
