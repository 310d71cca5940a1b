"""Every id and cursor the API issues, in the exact form it issues them.

Ids become Firestore document ids (and Cloud Tasks names, Storage object names), so nothing a
client sends may reach those places before it is checked here: a `/` would make it a path, `.`
and `..` are refused by Firestore and `__x__` is reserved, each a 500 instead of a 404 or a
422. A value the API could not have issued is answered like one it did not issue: not found
in a route, refused in a body, a query or a cursor, before anything is read.

Free text never becomes an id: category names and emails are found through documents keyed by
`key_of` (a hash of the normalised text), which keep the text itself in a field.

The forms (`[0-9]` rather than `\\d`, which matches any Unicode digit):

- `ENTITY`: `uuid7().hex` (users, tokens, accounts, categories, rules, rules jobs,
  recurrences, transfers) or 32 hex of a SHA-256 (accounts an import creates, an imported
  row's transaction). A budget's id is its category's.
- `TRANSACTION`: an entity id, or `rec-<recurrence id>-<yyyymmdd>` (a recurrence's occurrence).
- `IMPORT`: an entity id, or `k` + 31 hex (an upload with an Idempotency-Key).
- `ROW`: `<statement>-<ordinal>` zero-padded to 3 and 7 digits (imports.row_id).
- `NOTIFICATION`: `<cause>-<parts>` (notifications.notification_id): a lowercase word, then
  letters, digits, `_` and `-`, at most 200.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from valorize.domain.errors import ValidationFailed
from valorize.domain.model import category_name_key


@dataclass(frozen=True)
class Form:
    """One form of id or cursor. `regex` is unanchored; `pattern` anchors it for JSON Schema
    and pydantic. `canonical`, when given, must give the value back unchanged (a cursor that
    is a normalised name)."""

    regex: str
    canonical: Callable[[str], str] | None = None
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.regex, re.ASCII))

    @property
    def pattern(self) -> str:
        return f"^(?:{self.regex})$"

    def matches(self, value: object) -> bool:
        if not isinstance(value, str) or self._compiled.fullmatch(value) is None:
            return False
        return self.canonical is None or self.canonical(value) == value


_HEX = "[0-9a-f]{32}"
_DAY = "[0-9]{4}-[0-9]{2}-[0-9]{2}"

ENTITY = Form(_HEX)
TRANSACTION = Form(f"{_HEX}|rec-{_HEX}-[0-9]{{8}}")
IMPORT = Form(f"{_HEX}|k[0-9a-f]{{31}}")
ROW = Form("[0-9]{3,}-[0-9]{7,}")
NOTIFICATION = Form("[a-z][A-Za-z0-9_-]{0,199}")

# Cursors, as they are before base64: what each list pages by.
TRANSACTION_CURSOR = Form(f"{_DAY}#(?:{TRANSACTION.regex})")  # sort_key
NOTIFICATION_CURSOR = Form(
    f"{_DAY}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}\\.[0-9]{{6}}Z#(?:{NOTIFICATION.regex})"
)
RULE_CURSOR = Form(f"[0-9]{{7}}#{_HEX}")  # position, then id
DUE_CURSOR = Form(f"{_DAY}\\|users/{_HEX}/recurrences/{_HEX}")  # the scheduler's fan-out
NAME_KEY_CURSOR = Form("(?s:.+)", canonical=category_name_key)  # categories page by name


def key_of(text: str) -> str:
    """The document id of a name or an email (already normalised by the caller): a hash, so
    any text is a valid id and a lookup is still one read."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, form: Form) -> str:
    """The value a cursor carries, if it is one this API could have returned for that list."""
    try:
        value = base64.b64decode(
            cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
        ).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not form.matches(value):
        raise ValidationFailed.on("cursor", "not a cursor this API returned")
    return value
