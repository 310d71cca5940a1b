"""Rule requests: the request bodies of the rules API, and the JSON shape of a rule's
conditions and actions (the same shape is returned and stored).

A rule::

    {
      "name": "Uber rides",
      "match": "all",                      # "all" conditions (default) or "any" of them
      "conditions": [
        {"field": "description", "op": "contains", "value": "uber"},
        {"field": "amount", "op": "between", "value": {"max": 10000}},
        {"field": "type", "op": "is", "value": "debit"}
      ],
      "actions": [
        {"action": "set_category", "value": "<category id>"},
        {"action": "rename_description", "value": "Uber"},
        {"action": "add_note", "value": "ride"}
      ],
      "enabled": true,
      "stop": false,                       # true: later rules are skipped when this matches
      "position": 0                        # run order, ascending; omitted = after the last
    }

Conditions are `{"field", "op", "value"}`:

* `description` with `contains`, `starts_with` (text, 1-100 chars) or `matches` (a regular
  expression, 1-200 chars, searched anywhere: anchor with ^/$). Case- and accent-insensitive.
* `amount` with `between`: `{"min": m, "max": n}`, either may be omitted; inclusive bounds on
  the magnitude |amount| in minor units (cents), whatever the sign.
* `account_id` with `in`: a list of account ids.
* `type` with `is`: `"debit"` (money out) or `"credit"` (money in).

Actions are `{"action", "value"}`: `set_category` (a category id), `rename_description`
(new description), `add_note` (one line appended to the notes once, never repeated).

Errors name the JSON path: a bad regex in the first condition is a 422 on
`conditions.0.value`. Shape errors found by the schema carry the union's tags in the path
(`conditions.0.description.matches.value`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter

from valorize.domain import rules as r
from valorize.domain.errors import FieldError, ValidationFailed
from valorize.domain.model import Transaction, TransactionType
from valorize.service.requests import (
    MINOR_UNITS_MAX,
    NOT_BLANK,
    Id,
    Name,
    RequestModel,
    one_given,
)

T = TypeVar("T")

Needle = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=r.MAX_TEXT), NOT_BLANK
]
# Not stripped: spaces in a pattern mean something.
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=r.MAX_PATTERN)]
Magnitude = Annotated[StrictInt, Field(ge=0, le=MINOR_UNITS_MAX)]


def nested(prefix: str, err: ValidationFailed) -> ValidationFailed:
    """The same error with every field name under `prefix` ("value" -> "conditions.0.value")."""
    fields = [FieldError(f"{prefix}.{e.field}", e.message) for e in err.errors] or [
        FieldError(prefix, err.detail)
    ]
    return ValidationFailed("; ".join(f"{f.field}: {f.message}" for f in fields), fields)


def _each(prefix: str, items: Sequence[Any], build: Callable[[Any], T]) -> tuple[T, ...]:
    out: list[T] = []
    for i, item in enumerate(items):
        try:
            out.append(build(item))
        except ValidationFailed as e:
            raise nested(f"{prefix}.{i}", e) from None
    return tuple(out)


# --- conditions -------------------------------------------------------------------------------


class DescriptionContains(RequestModel):
    """`{"field": "description", "op": "contains", "value": "uber"}`"""

    field: Literal["description"]
    op: Literal["contains"]
    value: Needle

    def to_domain(self) -> r.Condition:
        return r.DescriptionContains(self.value)


class DescriptionStartsWith(RequestModel):
    """`{"field": "description", "op": "starts_with", "value": "pix "}`"""

    field: Literal["description"]
    op: Literal["starts_with"]
    value: Needle

    def to_domain(self) -> r.Condition:
        return r.DescriptionStartsWith(self.value)


class DescriptionMatches(RequestModel):
    """`{"field": "description", "op": "matches", "value": "^uber\\\\s*\\\\*?trip"}`: a regular
    expression searched in the description (folded: lower case, no accents). Evaluated with
    a time limit; a pattern that runs out of time counts as not matching."""

    field: Literal["description"]
    op: Literal["matches"]
    value: Pattern

    def to_domain(self) -> r.Condition:
        return r.DescriptionMatches(self.value)


class Range(RequestModel):
    # The document says what AmountBetween checks: at least one bound.
    model_config = ConfigDict(json_schema_extra=one_given("min", "max"))

    min: Magnitude | None = Field(default=None, description="Inclusive, minor units")
    max: Magnitude | None = Field(default=None, description="Inclusive, minor units")


class AmountBetween(RequestModel):
    """`{"field": "amount", "op": "between", "value": {"min": 1000, "max": 5000}}`: the
    magnitude |amount| within the bounds (minor units, inclusive; either may be omitted)."""

    field: Literal["amount"]
    op: Literal["between"]
    value: Range

    def to_domain(self) -> r.Condition:
        return r.AmountBetween(self.value.min, self.value.max)


class AccountIn(RequestModel):
    """`{"field": "account_id", "op": "in", "value": ["<account id>", ...]}`"""

    field: Literal["account_id"]
    op: Literal["in"]
    value: Annotated[list[Id], Field(min_length=1, max_length=r.MAX_ACCOUNTS)]

    def to_domain(self) -> r.Condition:
        return r.AccountIn(frozenset(self.value))


class TypeIs(RequestModel):
    """`{"field": "type", "op": "is", "value": "debit"}`: debit = money out, credit = in."""

    field: Literal["type"]
    op: Literal["is"]
    value: TransactionType

    def to_domain(self) -> r.Condition:
        return r.TypeIs(self.value)


DescriptionCondition = Annotated[
    DescriptionContains | DescriptionStartsWith | DescriptionMatches,
    Field(discriminator="op"),
]
ConditionIn = Annotated[
    DescriptionCondition | AmountBetween | AccountIn | TypeIs,
    Field(discriminator="field"),
]


# --- actions ----------------------------------------------------------------------------------


class SetCategory(RequestModel):
    """`{"action": "set_category", "value": "<category id>"}` (ignored on split
    transactions, whose splits carry the categories)."""

    action: Literal["set_category"]
    value: Id

    def to_domain(self) -> r.Action:
        return r.SetCategory(self.value)


class RenameDescription(RequestModel):
    """`{"action": "rename_description", "value": "Uber"}`"""

    action: Literal["rename_description"]
    value: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=r.MAX_DESCRIPTION),
        NOT_BLANK,
    ]

    def to_domain(self) -> r.Action:
        return r.RenameDescription(self.value)


class AddNote(RequestModel):
    """`{"action": "add_note", "value": "reimbursable"}`: appended to the notes as a line of
    its own, unless the notes already have that line."""

    action: Literal["add_note"]
    value: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=r.MAX_TEXT, pattern=r"^[^\r\n]*$"
        ),
        NOT_BLANK,
    ]

    def to_domain(self) -> r.Action:
        return r.AddNote(self.value)


ActionIn = Annotated[SetCategory | RenameDescription | AddNote, Field(discriminator="action")]

Conditions = Annotated[list[ConditionIn], Field(min_length=1, max_length=r.MAX_CONDITIONS)]
Actions = Annotated[list[ActionIn], Field(min_length=1, max_length=r.MAX_ACTIONS)]
Position = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


def conditions_of(items: Sequence[ConditionIn]) -> tuple[r.Condition, ...]:
    """Domain conditions; a bad regex is a ValidationFailed on `conditions.<i>.value`."""
    return _each("conditions", items, lambda c: c.to_domain())


def actions_of(items: Sequence[ActionIn]) -> tuple[r.Action, ...]:
    return _each("actions", items, lambda a: a.to_domain())


# --- commands ---------------------------------------------------------------------------------


class CreateRule(RequestModel):
    name: Name
    conditions: Conditions
    actions: Actions
    match: r.Match = Field(default=r.Match.ALL, description="all conditions, or any of them")
    enabled: bool = True
    stop: bool = Field(default=False, description="When it matches, skip the later rules")
    position: Position | None = Field(
        default=None, description="Run order, ascending; omitted = after the last rule"
    )

    def to_rule(self, *, rule_id: str, now: dt.datetime) -> r.Rule:
        """The domain rule (validated: regexes compile, at most one set_category...), not
        yet placed among the others (the store ranks it where `position` asks)."""
        return r.Rule(
            id=rule_id,
            name=self.name,
            position=self.position or 0,
            conditions=conditions_of(self.conditions),
            actions=actions_of(self.actions),
            created_at=now,
            updated_at=now,
            enabled=self.enabled,
            match=self.match,
            stop=self.stop,
        )


class UpdateRule(RequestModel):
    """PATCH: absent fields are unchanged; `conditions` and `actions` replace the lists."""

    name: Name | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None
    match: r.Match | None = None
    enabled: bool | None = None
    stop: bool | None = None
    position: Position | None = None

    def apply_to(self, rule: r.Rule, *, now: dt.datetime) -> r.Rule:
        """The rule with these changes, validated like a new one."""
        changes = {k: v for k, v in self.given().items() if v is not None}
        if "conditions" in changes:
            changes["conditions"] = conditions_of(changes["conditions"])
        if "actions" in changes:
            changes["actions"] = actions_of(changes["actions"])
        return replace(rule, **changes, updated_at=now)


class ApplyRules(RequestModel):
    """Run the rules over existing transactions (POST /rules/apply). Every filter narrows;
    none given = all of the user's transactions. Transfers are never touched."""

    model_config = ConfigDict(populate_by_name=True)

    account_id: Id | None = None
    from_: dt.date | None = Field(default=None, alias="from", description="Inclusive")
    to: dt.date | None = Field(default=None, description="Inclusive")
    only_uncategorized: bool = Field(
        default=False, description="Only transactions with no category (nor split categories)"
    )
    rule_ids: Annotated[list[Id], Field(min_length=1, max_length=r.MAX_RULES)] | None = Field(
        default=None, description="Only these rules (still in their order); omitted = all"
    )

    def check(self) -> None:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValidationFailed.on("to", "must not be before from")

    def selects(self, txn: Transaction) -> bool:
        """Whether a transaction is in scope (for filters the store cannot index)."""
        if txn.is_transfer:
            return False
        if self.account_id is not None and txn.account_id != self.account_id:
            return False
        if self.from_ is not None and txn.date < self.from_:
            return False
        if self.to is not None and txn.date > self.to:
            return False
        return not (self.only_uncategorized and not r.is_uncategorized(txn))


# --- the stored / returned shape --------------------------------------------------------------


@cache
def _conditions() -> TypeAdapter[list[ConditionIn]]:
    # Built on first use, not at import: cold start.
    return TypeAdapter(list[ConditionIn])


@cache
def _actions() -> TypeAdapter[list[ActionIn]]:
    return TypeAdapter(list[ActionIn])


def condition_json(c: r.Condition) -> dict[str, Any]:
    """The public JSON of a domain condition (what the API returns; the store has its own
    codec, adapters/firestore/rule_documents.py)."""
    if isinstance(c, r.DescriptionContains):
        return {"field": "description", "op": "contains", "value": c.text}
    if isinstance(c, r.DescriptionStartsWith):
        return {"field": "description", "op": "starts_with", "value": c.text}
    if isinstance(c, r.DescriptionMatches):
        return {"field": "description", "op": "matches", "value": c.pattern}
    if isinstance(c, r.AmountBetween):
        bounds = {"min": c.minimum, "max": c.maximum}
        return {
            "field": "amount",
            "op": "between",
            "value": {k: v for k, v in bounds.items() if v is not None},
        }
    if isinstance(c, r.AccountIn):
        return {"field": "account_id", "op": "in", "value": sorted(c.account_ids)}
    return {"field": "type", "op": "is", "value": c.type.value}


def action_json(a: r.Action) -> dict[str, Any]:
    if isinstance(a, r.SetCategory):
        return {"action": "set_category", "value": a.category_id}
    if isinstance(a, r.RenameDescription):
        return {"action": "rename_description", "value": a.description}
    return {"action": "add_note", "value": a.note}


def rule_json(rule: r.Rule) -> dict[str, Any]:
    """A rule as the API returns it (datetimes as ISO strings)."""
    return {
        "id": rule.id,
        "name": rule.name,
        "position": rule.position,
        "enabled": rule.enabled,
        "match": rule.match.value,
        "stop": rule.stop,
        "conditions": [condition_json(c) for c in rule.conditions],
        "actions": [action_json(a) for a in rule.actions],
        "created_at": rule.created_at.isoformat(),
        "updated_at": rule.updated_at.isoformat(),
    }


def conditions_in(conditions: Sequence[r.Condition]) -> list[ConditionIn]:
    """Domain conditions as the request models that write them (what the API shows)."""
    return _conditions().validate_python([condition_json(c) for c in conditions], strict=False)


def actions_in(actions: Sequence[r.Action]) -> list[ActionIn]:
    return _actions().validate_python([action_json(a) for a in actions], strict=False)
