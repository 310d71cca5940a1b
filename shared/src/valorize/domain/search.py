"""Text search over descriptions that an index can answer: the list's `q`.

`q` matches a transaction whose folded description (domain/text.py `fold`: case- and
accent-insensitive) contains the folded query anywhere. A query of GRAM characters or more
(once folded) holds its trigrams, and so does every description that contains it: each
transaction stores its description's distinct trigrams (`tokens`), and a search asks the
index for the transactions holding the query's rarest-looking trigram (`TextQuery.tokens`),
then checks the whole substring on those few (`TextQuery.matches`). A shorter query has no
trigram to ask for: it is checked on the transactions the other filters select (a bounded
scan, service/ports/ledger.py SCAN_LIMIT).

Firestore allows one array-contains per query, and the category filter is one too, so every
trigram is stored a second time per category of the transaction, prefixed with the category
id: text and category together are still one index lookup.

A description whose tokens would pass MAX_TOKENS (folding can lengthen text: "ﷺ" folds to
18 characters) stores OVERFLOW (and a per-category OVERFLOW) instead: every search asks for
it too and checks those by their substring, so they are found, at the cost of a read each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from valorize.domain.text import fold

GRAM = 3
# Tokens of one transaction: each is an entry in every composite index on them (16, see
# infra/cdktf/config.py), and Firestore allows 40,000 index entries per document.
MAX_TOKENS = 1_000
# Not a trigram (those have GRAM characters): marks a description stored without its trigrams.
OVERFLOW = ""

# Characters from the most to the least frequent in bank descriptions (Portuguese, English,
# digits): a query's trigram with the least frequent characters is likely the most selective.
_FREQUENT = " eaosrintdmuclpgvbf0123456789hqzjxkwy"
_WEIGHT = {c: len(_FREQUENT) - i for i, c in enumerate(_FREQUENT)}


def grams(folded: str) -> list[str]:
    """The distinct trigrams of a folded text, in order of first occurrence."""
    return list(dict.fromkeys(folded[i : i + GRAM] for i in range(len(folded) - GRAM + 1)))


def scoped(category_id: str, token: str) -> str:
    return f"{category_id}/{token}"


def tokens(description: str, category_ids: Sequence[str]) -> list[str]:
    """What a transaction stores for the index: its description's trigrams, and the same
    again under each of its categories."""
    own = grams(fold(description))
    if (1 + len(category_ids)) * len(own) > MAX_TOKENS:
        own = [OVERFLOW]
    return own + [scoped(c, g) for c in category_ids for g in own]


@dataclass(frozen=True)
class TextQuery:
    """A `q` search, folded."""

    needle: str

    @classmethod
    def of(cls, text: str) -> TextQuery:
        return cls(fold(text))

    @property
    def indexed(self) -> bool:
        """Whether the index can narrow it (it holds a trigram)."""
        return len(self.needle) >= GRAM

    def tokens(self, category_id: str | None) -> list[str]:
        """The stored tokens of which a match holds at least one (array-contains-any): the
        query's rarest-looking trigram, or OVERFLOW; under the category when there is one."""
        rarest = min(grams(self.needle), key=lambda g: sum(_WEIGHT.get(c, 0) for c in g))
        wanted = [rarest, OVERFLOW]
        return wanted if category_id is None else [scoped(category_id, t) for t in wanted]

    def matches(self, description: str) -> bool:
        return self.needle in fold(description)
