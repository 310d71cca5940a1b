"""The stored shapes of a rule's conditions and actions and of a recurrence's schedule.

They are the store's own codecs, from and to the domain's objects: the stored shape must not
move when the API's does, and a document written under an older, looser API must still be
read (reading through the request models would refuse one that a tightened validation now
refuses, and every read of that user's rules would fail). The shapes happen to be those the
API first had, which is what every stored document holds:

    {"field": "description", "op": "contains" | "starts_with" | "matches", "value": str}
    {"field": "amount", "op": "between", "value": {"min"?: int, "max"?: int}}
    {"field": "account_id", "op": "in", "value": [id, ...]}
    {"field": "type", "op": "is", "value": "debit" | "credit"}
    {"action": "set_category" | "rename_description" | "add_note", "value": str}
    {"frequency": "monthly", "day", "interval"} | {"frequency": "weekly", "weekday",
    "interval"} | {"frequency": "yearly", "month", "day", "interval"} | {"frequency": "daily",
    "interval"}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from valorize.domain import recurrence as rc
from valorize.domain import rules as r
from valorize.domain.model import TransactionType


def condition_doc(c: r.Condition) -> dict[str, Any]:
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


_CONDITIONS: dict[tuple[str, str], Callable[[Any], r.Condition]] = {
    ("description", "contains"): r.DescriptionContains,
    ("description", "starts_with"): r.DescriptionStartsWith,
    ("description", "matches"): r.DescriptionMatches,
    ("amount", "between"): lambda v: r.AmountBetween(v.get("min"), v.get("max")),
    ("account_id", "in"): lambda v: r.AccountIn(frozenset(v)),
    ("type", "is"): lambda v: r.TypeIs(TransactionType(v)),
}


def condition_of(d: dict[str, Any]) -> r.Condition:
    return _CONDITIONS[(d["field"], d["op"])](d["value"])


def action_doc(a: r.Action) -> dict[str, Any]:
    if isinstance(a, r.SetCategory):
        return {"action": "set_category", "value": a.category_id}
    if isinstance(a, r.RenameDescription):
        return {"action": "rename_description", "value": a.description}
    return {"action": "add_note", "value": a.note}


_ACTIONS: dict[str, Callable[[str], r.Action]] = {
    "set_category": r.SetCategory,
    "rename_description": r.RenameDescription,
    "add_note": r.AddNote,
}


def action_of(d: dict[str, Any]) -> r.Action:
    return _ACTIONS[d["action"]](d["value"])


def schedule_doc(s: rc.Schedule) -> dict[str, Any]:
    if isinstance(s, rc.Monthly):
        return {"frequency": "monthly", "day": s.day, "interval": s.interval}
    if isinstance(s, rc.Weekly):
        return {"frequency": "weekly", "weekday": s.weekday.value, "interval": s.interval}
    if isinstance(s, rc.Yearly):
        return {"frequency": "yearly", "month": s.month, "day": s.day, "interval": s.interval}
    return {"frequency": "daily", "interval": s.interval}


def schedule_of(d: dict[str, Any]) -> rc.Schedule:
    interval = int(d.get("interval", 1))
    frequency = d["frequency"]
    if frequency == "monthly":
        return rc.Monthly(int(d["day"]), interval)
    if frequency == "weekly":
        return rc.Weekly(rc.Weekday(d["weekday"]), interval)
    if frequency == "yearly":
        return rc.Yearly(int(d["month"]), int(d["day"]), interval)
    return rc.Daily(interval)
