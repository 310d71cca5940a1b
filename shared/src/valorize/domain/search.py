"""Text search over descriptions that an index can answer: the list's `q`.

`q` matches a transaction whose folded description (domain/text.py `fold`: case- and
accent-insensitive) contains the folded query anywhere. Each transaction stores its folded
description's distinct substrings of 1, 2 and GRAM (3) characters (`tokens`), so the index
holds every query's way in: a query of 1 or 2 characters (once folded) is itself a stored
token, and the index answers it exactly; a longer one holds trigrams, and so does every
description that contains it: the search asks the index for the transactions holding the
query's rarest-looking trigram (`TextQuery.tokens`), then checks the whole substring on those
few (`TextQuery.matches`). A query that folds to nothing (only combining accents) is in every
description: it asks the index for nothing (`TextQuery.indexed`) and matches all.

Firestore allows one array-contains per query, and the category filter is one too, so every
token is stored a second time per category of the transaction, prefixed with the category
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
# Not a token (those have 1 to GRAM characters): marks a description stored without its tokens.
OVERFLOW = ""

# Characters from the most to the least frequent in bank descriptions (Portuguese, English,
# digits): a query's trigram with the least frequent characters is likely the most selective.
_FREQUENT = " eaosrintdmuclpgvbf0123456789hqzjxkwy"
_WEIGHT = {c: len(_FREQUENT) - i for i, c in enumerate(_FREQUENT)}


def grams(folded: str, size: int = GRAM) -> list[str]:
    """The distinct substrings of `size` characters of a folded text, in order of first
    occurrence."""
    return list(dict.fromkeys(folded[i : i + size] for i in range(len(folded) - size + 1)))


def scoped(category_id: str, token: str) -> str:
    return f"{category_id}/{token}"


def tokens(description: str, category_ids: Sequence[str]) -> list[str]:
    """What a transaction stores for the index: its description's distinct substrings of 1,
    2 and GRAM characters, and the same again under each of its categories."""
    folded = fold(description)
    own = [g for size in range(1, GRAM + 1) for g in grams(folded, size)]
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
        """Whether the index can narrow it: any needle but the empty one, which every
        description contains."""
        return self.needle != ""

    def tokens(self, category_id: str | None) -> list[str]:
        """The stored tokens of which a match holds at least one (array-contains-any): the
        needle itself when it is shorter than a trigram, else its rarest-looking trigram; or
        OVERFLOW; under the category when there is one."""
        if not self.indexed:
            # "" would ask for OVERFLOW alone and miss every other description.
            raise ValueError("an empty needle has no token: it matches every description")
        if len(self.needle) < GRAM:
            token = self.needle
        else:
            token = min(grams(self.needle), key=lambda g: sum(_WEIGHT.get(c, 0) for c in g))
        wanted = [token, OVERFLOW]
        return wanted if category_id is None else [scoped(category_id, t) for t in wanted]

    def matches(self, description: str) -> bool:
        return self.needle in fold(description)
