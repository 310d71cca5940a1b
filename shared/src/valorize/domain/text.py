"""Text comparison shared by search and rules: case- and accent-insensitive."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Case- and accent-insensitive form ("Café" and "CAFE" both fold to "cafe").

    The list's text search (domain/search.py) folds with it too, so a rule matches exactly
    what searching for the same words finds."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def squash(text: str) -> str:
    """`fold` with runs of whitespace collapsed to one space and the ends trimmed: bank
    descriptions pad with spaces ("UBER   *TRIP"), and a rule for "uber *trip" should match."""
    return " ".join(fold(text).split())


def strip_accents(text: str) -> str:
    """Remove combining marks only, keeping case: used on regex patterns, where case carries
    meaning (`\\S` is not `\\s`) but an accent on a literal must not stop a match against a
    folded description."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))
