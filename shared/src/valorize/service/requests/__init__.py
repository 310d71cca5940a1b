"""Request models: the bodies and queries the services take, validated at the HTTP edge (one
definition, checked at the edge, typed inside). This module holds the shared field types and
the requests of auth, accounts, categories and transactions; each other capability has its
module beside it (budgets, recurrences, rules, imports, automations)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from valorize.domain import ids
from valorize.domain.model import AccountType, CategoryType, Color, TransactionType
from valorize.domain.money import is_currency, iso4217_codes

# A stripped string of at least one character has one that str.strip() keeps: the document
# says so with the whitespace Python strips, spelled out (ECMA 262's \s is another set).
PYTHON_SPACE = (
    "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK = Field(json_schema_extra={"not": {"pattern": f"^[{PYTHON_SPACE}]*$"}})

# Amounts are 64-bit signed minor units: wide enough for any balance, and refusing values
# Firestore's integer type would silently mangle.
MINOR_UNITS_MAX = 2**53 - 1


def _currency(code: str) -> str:
    if not is_currency(code):
        raise ValueError("must be an ISO-4217 currency code such as BRL, USD or EUR")
    return code


def _currency_enum(schema: dict[str, Any]) -> None:
    # The codes themselves, so that the document refuses what the API refuses ("AAA" fits
    # [A-Z]{3}); built when the document is, never on a request's path.
    schema["enum"] = sorted(iso4217_codes())


CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_currency),
    Field(json_schema_extra=_currency_enum),
]


def _deliverable(schema: dict[str, Any]) -> None:
    # email-validator refuses addresses at special-use domains (RFC 6761: ".test", ...), which
    # the "email" format allows: the document says so, in ECMA 262 (no case-insensitive flag).
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    names = "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
        for name in SPECIAL_USE_DOMAIN_NAMES
    )
    schema["not"] = {"pattern": rf"@(.*\.)?({names})\.?$"}


Email = Annotated[EmailStr, Field(json_schema_extra=_deliverable)]
# A year 0000 has no calendar (no date in it exists), so the pattern leaves it out.
MONTH_PATTERN = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])$"
)
Month = Annotated[str, StringConstraints(pattern=MONTH_PATTERN)]
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    # Query strings are validated laxly, and lax pydantic reads "0" as 1970-01-01 (a Unix
    # timestamp): a date in a query is YYYY-MM-DD and nothing else.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("use YYYY-MM-DD, e.g. 2026-11-30")
    return value


QueryDate = Annotated[dt.date, BeforeValidator(_iso_date)]
MinorUnits = Annotated[StrictInt, Field(ge=-MINOR_UNITS_MAX, le=MINOR_UNITS_MAX)]
PositiveMinorUnits = Annotated[StrictInt, Field(gt=0, le=MINOR_UNITS_MAX)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120), NOT_BLANK
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
# Ids in bodies and queries: exactly the forms the API issues (domain/ids.py), so nothing else
# reaches a document path; anything else is a 422 naming the field.
Id = Annotated[str, StringConstraints(pattern=ids.ENTITY.pattern)]
ImportId = Annotated[str, StringConstraints(pattern=ids.IMPORT.pattern)]


def one_given(*names: str) -> dict[str, Any]:
    """A body's schema for "at least one of these, not null" (a model validator checks it)."""
    return {
        "anyOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names
        ]
    }


class RequestModel(BaseModel):
    # Unknown fields are refused rather than ignored so a typo never silently drops data.
    # Validators are built on first use (defer_build): a function validates a handful of the
    # API's bodies, and building them all at import was ~20 % of an instance's start.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
    # PATCH fields that may be left out but never cleared: an explicit null is a 422 naming
    # the field, and the document leaves null out of their schemas.
    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @field_validator("*")
    @classmethod
    def _not_cleared(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError("cannot be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        for name in cls.NOT_NULL:
            prop = target["properties"][name]
            # Left out means unchanged: no default to show, and null is no value of it.
            prop.pop("default", None)
            kept = [s for s in prop.pop("anyOf", [prop]) if s.get("type") != "null"]
            if kept != [prop]:
                prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        return schema

    def given(self) -> dict[str, Any]:
        """The fields the caller actually sent (PATCH semantics: absent = unchanged)."""
        return {k: getattr(self, k) for k in self.model_fields_set}


# --- auth -------------------------------------------------------------------------------------


class Register(RequestModel):
    email: Email
    password: Annotated[str, StringConstraints(min_length=8, max_length=256)]
    name: Name
    preferred_currency: CurrencyCode
    locale: Annotated[str, StringConstraints(pattern=r"^(en|pt-BR)$")] | None = Field(
        default=None, description="en or pt-BR; defaults to pt-BR for BRL users, en otherwise"
    )


class Login(RequestModel):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CreateToken(RequestModel):
    name: Name
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = Field(
        default=None, description="Days until the token expires; omit for no expiry"
    )


# --- accounts ---------------------------------------------------------------------------------

BankCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32), NOT_BLANK
]
AccountNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NOT_BLANK
]


class CreateAccount(RequestModel):
    name: Name
    type: AccountType
    currency: CurrencyCode
    opening_balance: MinorUnits = Field(default=0, description="Minor units (cents)")
    bank_code: BankCode | None = None
    bank_name: Name | None = None
    number: AccountNumber | None = None
    low_balance_threshold: MinorUnits | None = Field(
        default=None,
        description="Notify when the balance falls below this (minor units); null: never",
    )


class UpdateAccount(RequestModel):
    NOT_NULL = ("name", "type", "currency", "opening_balance")

    name: Name | None = None
    type: AccountType | None = None
    currency: CurrencyCode | None = Field(
        default=None, description="Only while the account has no transactions"
    )
    opening_balance: MinorUnits | None = None
    bank_code: BankCode | None = None
    bank_name: Name | None = None
    number: AccountNumber | None = None
    low_balance_threshold: MinorUnits | None = Field(
        default=None,
        description="Notify when the balance falls below this (minor units); null: never",
    )


# --- categories -------------------------------------------------------------------------------


class CreateCategory(RequestModel):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), NOT_BLANK
    ]
    color: Color
    type: CategoryType = CategoryType.EXPENSE
    description: Text | None = None
    parent_id: Id | None = None


class UpdateCategory(RequestModel):
    NOT_NULL = ("name", "color", "type")

    name: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), NOT_BLANK
        ]
        | None
    ) = None
    color: Color | None = None
    type: CategoryType | None = None
    description: Text | None = None
    parent_id: Id | None = None


# --- transactions -----------------------------------------------------------------------------

Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NOT_BLANK
]


class SplitIn(RequestModel):
    category_id: Id
    amount: MinorUnits
    description: Description | None = None


class CreateTransaction(RequestModel):
    account_id: Id
    amount: MinorUnits = Field(description="Signed minor units: negative = money out")
    date: dt.date
    description: Description
    category_id: Id | None = None
    notes: Text | None = None
    splits: Annotated[list[SplitIn], Field(max_length=50)] = Field(default_factory=list)


class UpdateTransaction(RequestModel):
    NOT_NULL = ("amount", "date", "description")

    amount: MinorUnits | None = None
    date: dt.date | None = None
    description: Description | None = None
    category_id: Id | None = None
    notes: Text | None = None
    splits: Annotated[list[SplitIn], Field(max_length=50)] | None = None


class CreateTransfer(RequestModel):
    from_account_id: Id
    to_account_id: Id
    amount: PositiveMinorUnits = Field(description="Positive minor units moved")
    date: dt.date
    description: Description
    notes: Text | None = None


# --- queries ----------------------------------------------------------------------------------


class Page(BaseModel):
    """Query-string models are lax: every value arrives as a string."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str, StringConstraints(max_length=500)] | None = None


class ListTransactions(Page):
    account_id: Id | None = None
    category_id: Id | None = None
    from_: QueryDate | None = Field(default=None, alias="from")
    to: QueryDate | None = None
    type: TransactionType | None = None
    min_amount: Annotated[int, Field(ge=0, le=MINOR_UNITS_MAX)] | None = Field(
        default=None, description="Minimum magnitude |amount| in minor units"
    )
    max_amount: Annotated[int, Field(ge=0, le=MINOR_UNITS_MAX)] | None = Field(
        default=None, description="Maximum magnitude |amount| in minor units"
    )
    q: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NOT_BLANK
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "Case- and accent-insensitive substring of the description, of any length,"
            " answered by an index (the description's substrings of 1, 2 and 3 characters,"
            " once folded)"
        ),
    )
    import_id: ImportId | None = None


class DeleteAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    confirm: bool = Field(
        default=False, description="Required (true) when the account has transactions"
    )


class AccountDeletionTask(BaseModel):
    """The body of the accounts function's deletion task (task name
    `account-delete-<account>-<step>`): one delivery deletes pages for a while, then hands on."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    user_id: Id
    account_id: Id
    step: Annotated[StrictInt, Field(ge=0)]


class DeleteCategory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    reassign_to: Id | None = Field(
        default=None, description="Move this category's transactions to another category"
    )
    uncategorize: bool = Field(
        default=False, description="Leave this category's transactions uncategorized"
    )
