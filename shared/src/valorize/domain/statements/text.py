"""Bytes to text for bank files: BOMs, declared charsets that lie, and name folding.

Brazilian banks write Windows-1252 (often declared as ISO-8859-1, USASCII or even UTF-8), so
every decoder here starts with the best guess and, when that guess is UTF-8 and the bytes
say otherwise, carries on in Windows-1252 instead of failing the import.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from typing import Final

UTF8: Final = "utf-8"
CP1252: Final = "cp1252"

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Labels a bank file may declare, to the codec we actually use. As in browsers (WHATWG),
# ISO-8859-1 means Windows-1252: files so labelled carry “smart quotes” and € from Windows.
_LABELS: Final = {
    "1252": CP1252,
    "cp1252": CP1252,
    "windows1252": CP1252,
    "iso88591": CP1252,
    "88591": CP1252,
    "latin1": CP1252,
    "l1": CP1252,
    "utf8": UTF8,
    "unicode": UTF8,
    "utf8sig": UTF8,
}
# "Plain ASCII" declarations: in practice the body carries accents anyway, in any encoding.
_ASCII_LABELS: Final = frozenset({"usascii", "ascii", "none", "", "646", "ansix3.41968"})


def split_bom(head: bytes) -> tuple[str | None, int]:
    """The encoding a byte-order mark announces at the start of `head`, and its length."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return None, 0


def resolve_label(label: str | None) -> str | None:
    """A declared charset/encoding label as a Python codec name; None when it says nothing
    useful (ASCII, NONE, unknown), in which case the caller sniffs."""
    if label is None:
        return None
    key = re.sub(r"[^0-9a-z.]", "", label.strip().lower())
    if key in _ASCII_LABELS:
        return None
    if key in _LABELS:
        return _LABELS[key]
    try:
        name = codecs.lookup(label.strip()).name
    except (LookupError, ValueError):
        return None
    return CP1252 if name in ("latin-1", "iso8859-1") else name


def looks_utf8(data: bytes) -> bool:
    """Whether `data` (possibly cut mid-character at the end) is valid UTF-8."""
    try:
        codecs.getincrementaldecoder(UTF8)("strict").decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


class Decoder:
    """Incremental bytes → str. Starts in `encoding`; a UTF-8 decoder that meets bytes that
    are not UTF-8 switches to Windows-1252 for the rest of the file (`switched` says so).
    Never raises: undecodable bytes of single-byte codecs become U+FFFD."""

    def __init__(self, encoding: str, *, fallback: bool = True) -> None:
        self.encoding = encoding
        self.switched = False
        strict = encoding == UTF8 and fallback
        self._fallback = strict
        self._dec = codecs.getincrementaldecoder(encoding)("strict" if strict else "replace")

    def decode(self, data: bytes, final: bool = False) -> str:
        try:
            return self._dec.decode(data, final)
        except UnicodeDecodeError:
            if not self._fallback:  # pragma: no cover - "replace" decoders do not raise
                raise
        pending = self._dec.getstate()[0]
        self.encoding, self.switched, self._fallback = CP1252, True, False
        self._dec = codecs.getincrementaldecoder(CP1252)("replace")
        return self._dec.decode(pending + data, final)


_PARENS = re.compile(r"\([^)]*\)")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def fold_name(text: str) -> str:
    """A column or tag name compared loosely: case, accents, punctuation, extra spaces and
    parenthesised units ignored ("Crédito (R$)" and "credito" are the same; "Docto." is
    "docto")."""
    decomposed = unicodedata.normalize("NFKD", _PARENS.sub(" ", text).casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", plain).strip()
