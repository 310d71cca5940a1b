"""Rules: ordered automations that categorise, rename and annotate transactions. No I/O.

How a rule set runs on one transaction (the public semantics, decided here):

* **Order.** Enabled rules run in ascending `rank` (ties by id); `position` is the index in
  that order (dense from 0, derived on read). Every rule whose
  conditions match applies its actions, and a later rule overrides what an earlier one set
  (Actual Budget's model, rather than first-match-wins): general rules go first, specific
  ones last, and the specific one wins. A rule with `stop=True` ends the pass when it matches,
  which gives first-match-wins to the rules that want it (like mail filters or Lunch Money's
  "stop processing").
* **Chaining.** Each rule sees the transaction as the rules before it left it, so a rename
  ("PAG*UBER TRIP 1234" -> "Uber") can feed a later rule ("description is Uber" -> Transport).
* **Idempotence.** One chained pass alone is not idempotent: a rename can make an *earlier*
  rule match the next time round. So the pass is repeated until the description stops
  changing, and the result is a fixed point: applying the rules again changes nothing. If
  renames form a loop (A renames "x" to "y", B renames "y" back to "x") there is no fixed
  point; then the transaction keeps its description, the other actions come from a single
  pass over that description (again stable), and the outcome reports `rename_loop`.
* **Conditions.** `match=all` needs every condition, `match=any` one. Text conditions compare
  folded text (case- and accent-insensitive, like the transaction search); `contains` and
  `starts_with` also collapse runs of spaces. Amount bounds apply to the magnitude |amount|
  in minor units, inclusive, like the list filter. A regex runs on the folded description,
  with accents removed from the pattern's literals, in RE2 (see `compile_pattern`).
* **Budget.** Applying a rule set to one transaction may spend at most its budget of CPU
  (`RULES_BUDGET_SECONDS`, Settings.rules_budget_ms). When it is spent, the rules not yet
  evaluated are skipped: the transaction keeps what the rules before them did, its notes
  get the line SKIPPED_NOTE (so the user sees it), and the outcome lists them in `skipped`
  (the service logs that at ERROR, counted). A rule set
  within the limits (RE2, MAX_RULES x MAX_CONDITIONS) costs about a millisecond; only a
  set built to be slow reaches the budget.
* **Actions.** `set_category` overwrites the category (skipped on split transactions, whose
  splits carry the categories); `rename_description` overwrites the description;
  `add_note` appends a line to the notes unless that line is already there.
* **Scope.** Transfers are never touched (their two sides mirror each other and carry no
  category). `apply` never changes `updated_at`: the caller stamps it when `changed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

from fractional_indexing import generate_key_between

from valorize.domain.ceilings import MAX_RULES as MAX_RULES
from valorize.domain.ceilings import RULES_BUDGET_SECONDS as RULES_BUDGET_SECONDS
from valorize.domain.errors import ValidationFailed
from valorize.domain.model import Transaction, TransactionType
from valorize.domain.text import fold, squash, strip_accents

# Limits. They bound the work one transaction can cost: rules x conditions x regex time. The
# number of rules per user is Settings.max_rules, at most MAX_RULES.
MAX_CONDITIONS = 20
MAX_ACTIONS = 10
MAX_TEXT = 100
MAX_PATTERN = 200
MAX_ACCOUNTS = 50
# Same bounds as the commands: a description is at most 255 characters, notes 500.
MAX_DESCRIPTION = 255
MAX_NOTES = 500
# The line a transaction's notes get when its rules ran out of budget: the user sees why a rule
# they expected did not apply (once, however often it happens: add_note never repeats a line).
SKIPPED_NOTE = "Some rules were not applied: they took too long (see Limits)."
# RE2's memory per compiled pattern (its default is 8 MiB): a pattern needing more is refused.
PATTERN_MEMORY = 1 << 20


class Match(StrEnum):
    ALL = "all"
    ANY = "any"


# --- conditions -------------------------------------------------------------------------------
#
# Each condition has one operand; validation errors name it "value" (the JSON key every
# condition uses), and the command layer prefixes the condition's index.


def _text_operand(text: str, limit: int = MAX_TEXT) -> str:
    folded = squash(text)
    if not folded:
        raise ValidationFailed.on("value", "must contain some text")
    if len(text) > limit:
        raise ValidationFailed.on("value", f"at most {limit} characters")
    return folded


@dataclass(frozen=True)
class DescriptionContains:
    text: str
    _needle: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needle", _text_operand(self.text))

    def test(self, subject: _Subject) -> bool:
        return self._needle in subject.squashed


@dataclass(frozen=True)
class DescriptionStartsWith:
    text: str
    _needle: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needle", _text_operand(self.text))

    def test(self, subject: _Subject) -> bool:
        return subject.squashed.startswith(self._needle)


def compile_pattern(pattern: str) -> Any:
    """The compiled form of a rule's regex, or ValidationFailed on "value" saying why not.

    Patterns run in RE2 (google-re2), whose matching time is linear in the description
    whatever the pattern: no pattern can backtrack catastrophically (`(a|aa)+$`, `(x+x+)+y`
    are as fast as `uber`). The price is RE2's syntax, Python's without the constructs only a
    backtracking engine can run: back-references (`\\1`), look-around (`(?=`, `(?<=`...),
    atomic groups and possessive quantifiers; those, repetitions over 1000 and patterns
    needing more than PATTERN_MEMORY are refused here (422). `\\w`, `\\d` and `\\b` are
    ASCII in RE2; descriptions are folded (accents removed), and `\\pL` matches any letter."""
    if not pattern:
        raise ValidationFailed.on("value", "a pattern cannot be empty")
    if len(pattern) > MAX_PATTERN:
        raise ValidationFailed.on("value", f"a pattern has at most {MAX_PATTERN} characters")
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = PATTERN_MEMORY
    # RE2 would print every refused pattern on stderr; the 422 says it instead.
    options.log_errors = False
    try:
        return re2.compile(strip_accents(pattern), options)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args else "invalid"
        raise ValidationFailed.on(
            "value",
            f"not a regular expression rules can run ({reason}): patterns use RE2 syntax, "
            "without back-references, look-around, atomic groups or possessive quantifiers",
        ) from None


@dataclass(frozen=True)
class DescriptionMatches:
    """A regular expression (RE2 syntax, see `compile_pattern`) searched anywhere in the
    description; anchor with ^ and $ for a whole match."""

    pattern: str
    _compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", compile_pattern(self.pattern))

    def test(self, subject: _Subject) -> bool:
        return self._compiled.search(subject.folded) is not None


@dataclass(frozen=True)
class AmountBetween:
    """|amount| within [minimum, maximum], minor units; either bound may be open."""

    minimum: int | None = None
    maximum: int | None = None

    def __post_init__(self) -> None:
        if self.minimum is None and self.maximum is None:
            raise ValidationFailed.on("value", "give min, max or both")
        for name, bound in (("min", self.minimum), ("max", self.maximum)):
            if bound is not None and (isinstance(bound, bool) or bound < 0):
                raise ValidationFailed.on(f"value.{name}", "a magnitude: zero or more")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValidationFailed.on("value.max", "must be at least min")

    def test(self, subject: _Subject) -> bool:
        magnitude = abs(subject.transaction.amount)
        if self.minimum is not None and magnitude < self.minimum:
            return False
        return self.maximum is None or magnitude <= self.maximum


@dataclass(frozen=True)
class AccountIn:
    account_ids: frozenset[str]

    def __post_init__(self) -> None:
        if not self.account_ids:
            raise ValidationFailed.on("value", "name at least one account")
        if len(self.account_ids) > MAX_ACCOUNTS:
            raise ValidationFailed.on("value", f"at most {MAX_ACCOUNTS} accounts")

    def test(self, subject: _Subject) -> bool:
        return subject.transaction.account_id in self.account_ids


@dataclass(frozen=True)
class TypeIs:
    type: TransactionType

    def test(self, subject: _Subject) -> bool:
        return subject.transaction.type is self.type


Condition: TypeAlias = (
    DescriptionContains
    | DescriptionStartsWith
    | DescriptionMatches
    | AmountBetween
    | AccountIn
    | TypeIs
)


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetCategory:
    category_id: str

    def __post_init__(self) -> None:
        if not self.category_id:
            raise ValidationFailed.on("value", "name a category")


@dataclass(frozen=True)
class RenameDescription:
    description: str

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValidationFailed.on("value", "a description cannot be blank")
        if len(self.description) > MAX_DESCRIPTION:
            raise ValidationFailed.on("value", f"at most {MAX_DESCRIPTION} characters")


@dataclass(frozen=True)
class AddNote:
    note: str

    def __post_init__(self) -> None:
        if not self.note.strip():
            raise ValidationFailed.on("value", "a note cannot be blank")
        if "\n" in self.note or "\r" in self.note:
            raise ValidationFailed.on("value", "a note is one line")
        if len(self.note) > MAX_TEXT:
            raise ValidationFailed.on("value", f"at most {MAX_TEXT} characters")


Action: TypeAlias = SetCategory | RenameDescription | AddNote


def add_note(notes: str | None, note: str) -> str | None:
    """Notes with `note` appended as its own line, unless a line already says it (compared
    folded and trimmed). None when it would not fit in MAX_NOTES: the note is then left out
    rather than the existing notes cut."""
    lines = notes.splitlines() if notes else []
    if any(squash(line) == squash(note) for line in lines):
        return notes
    merged = f"{notes.rstrip()}\n{note.strip()}" if notes and notes.strip() else note.strip()
    return merged if len(merged) <= MAX_NOTES else None


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    position: int
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]
    created_at: datetime
    updated_at: datetime
    enabled: bool = True
    match: Match = Match.ALL
    stop: bool = False
    # The stored order: a fractional-index key (see `placed`). Positions are derived from it,
    # so moving a rule rewrites that rule only, and creating one writes nothing else.
    rank: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValidationFailed.on("name", "a rule needs a name")
        if self.position < 0:
            raise ValidationFailed.on("position", "zero or more")
        if not self.conditions:
            # A rule without conditions would rewrite every transaction the user has.
            raise ValidationFailed.on("conditions", "give at least one condition")
        if len(self.conditions) > MAX_CONDITIONS:
            raise ValidationFailed.on("conditions", f"at most {MAX_CONDITIONS} conditions")
        if not self.actions:
            raise ValidationFailed.on("actions", "give at least one action")
        if len(self.actions) > MAX_ACTIONS:
            raise ValidationFailed.on("actions", f"at most {MAX_ACTIONS} actions")
        seen: set[type[Action]] = set()
        for i, action in enumerate(self.actions):
            kind = type(action)
            if kind in seen and kind is not AddNote:
                raise ValidationFailed.on(
                    f"actions.{i}", "a rule sets the category or the description once"
                )
            seen.add(kind)

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.rank, self.position, self.id)


def ordered(rules: Iterable[Rule]) -> list[Rule]:
    """Enabled rules in the order they run."""
    return sorted((r for r in rules if r.enabled), key=lambda r: r.sort_key)


def placed(rule: Rule, others: Sequence[Rule], index: int | None) -> Rule:
    """`rule` ranked at `index` among `others` (the other rules in run order); None or past
    the end puts it last. Its rank falls between its new neighbours', so no other rule moves.

    Rules placed at one spot at the same moment get the same rank and run in id order; a
    rule cannot be put between two such twins, so it goes right after them."""
    at = len(others) if index is None else min(index, len(others))
    lo = others[at - 1].rank if at > 0 else None
    hi = others[at].rank if at < len(others) else None
    if lo is not None and hi is not None and hi <= lo:
        hi = next((x.rank for x in others[at:] if x.rank > lo), None)
    return replace(rule, rank=generate_key_between(lo, hi), position=at)


def numbered(rules: Iterable[Rule]) -> list[Rule]:
    """Every rule in run order with its `position` (its index in that order)."""
    in_order = sorted(rules, key=lambda r: (r.rank, r.id))
    return [r if r.position == i else replace(r, position=i) for i, r in enumerate(in_order)]


def is_uncategorized(txn: Transaction) -> bool:
    """No category of its own and none on its splits (ApplyRules' only_uncategorized)."""
    return not txn.category_ids


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Subject:
    """What conditions look at: the transaction and its description's folded forms,
    computed once per description rather than per condition."""

    transaction: Transaction
    folded: str
    squashed: str

    @classmethod
    def of(cls, txn: Transaction) -> _Subject:
        return cls(txn, fold(txn.description), squash(txn.description))


@dataclass(frozen=True)
class RulesOutcome:
    """What applying a rule set to one transaction did.

    `applied` lists the rules that matched, in the order they first matched; `skipped` the
    rules not evaluated because the budget was spent (the transaction keeps what the rules
    before them did); `rename_loop` that renames undid each other and were left out."""

    before: Transaction
    transaction: Transaction
    applied: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    rename_loop: bool = False

    @property
    def changed(self) -> bool:
        return self.transaction != self.before


class RuleSet:
    """A user's rules, ordered once, applied to many transactions.

    Regexes are compiled when the rules are built. Each `apply` may spend `budget` seconds
    of `timer` (CPU time of the calling thread: a busy machine does not make rules skip);
    `on_skipped` hears of every outcome that skipped rules (the service logs it)."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        budget: float = RULES_BUDGET_SECONDS,
        timer: Callable[[], float] = time.thread_time,
        on_skipped: Callable[[RulesOutcome], None] | None = None,
    ) -> None:
        self.rules: list[Rule] = ordered(rules)
        self.budget = budget
        self.timer = timer
        self.on_skipped = on_skipped

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, txn: Transaction) -> RulesOutcome:
        if txn.is_transfer or not self.rules:
            return RulesOutcome(txn, txn)
        outcome = self._apply(txn, _Run(self))
        if outcome.skipped:
            notes = add_note(outcome.transaction.notes, SKIPPED_NOTE)
            if notes is not None:
                outcome = replace(outcome, transaction=replace(outcome.transaction, notes=notes))
            if self.on_skipped is not None:
                self.on_skipped(outcome)
        return outcome

    @staticmethod
    def _apply(txn: Transaction, run: _Run) -> RulesOutcome:
        seen = {txn.description}
        current = txn
        while True:
            after = run.pass_over(current, renames=True)
            if run.skipped or after.description == current.description:
                current = after
                break
            if after.description in seen:
                # Renames cycle: no fixed point. Keep the description; one pass without
                # renames over it is stable under re-application.
                return run.outcome(txn, run.pass_over(txn, renames=False), rename_loop=True)
            seen.add(after.description)
            current = after
        return run.outcome(txn, current)


class _BudgetSpent(Exception):
    pass


class _Run:
    """One application: remembers each rule's verdict per description, so the fixed-point
    passes cost no extra condition evaluations, and stops evaluating when the budget is
    spent."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.deadline = rules.timer() + rules.budget
        self.verdicts: dict[tuple[int, str], bool] = {}
        self.applied: dict[str, None] = {}
        self.skipped: tuple[str, ...] = ()

    def pass_over(self, txn: Transaction, *, renames: bool) -> Transaction:
        subject = _Subject.of(txn)
        for index, rule in enumerate(self.rules.rules):
            try:
                matches = self._matches(index, rule, subject)
            except _BudgetSpent:
                self.skipped = tuple(r.id for r in self.rules.rules[index:])
                break
            if not matches:
                continue
            self.applied.setdefault(rule.id)
            txn = _act(txn, rule.actions, renames=renames)
            if txn.description != subject.transaction.description:
                subject = _Subject.of(txn)
            if rule.stop:
                break
        return txn

    def _matches(self, index: int, rule: Rule, subject: _Subject) -> bool:
        # Conditions read the description and fields no action changes (amount, account,
        # type), so the description is the whole key.
        key = (index, subject.transaction.description)
        if key not in self.verdicts:
            if self.skipped or self.rules.timer() >= self.deadline:
                raise _BudgetSpent
            if rule.match is Match.ALL:
                verdict = all(c.test(subject) for c in rule.conditions)
            else:
                verdict = any(c.test(subject) for c in rule.conditions)
            self.verdicts[key] = verdict
        return self.verdicts[key]

    def outcome(
        self, before: Transaction, after: Transaction, *, rename_loop: bool = False
    ) -> RulesOutcome:
        return RulesOutcome(
            before=before,
            transaction=after,
            applied=tuple(self.applied),
            skipped=self.skipped,
            rename_loop=rename_loop,
        )


def _act(txn: Transaction, actions: Sequence[Action], *, renames: bool) -> Transaction:
    for action in actions:
        if isinstance(action, SetCategory):
            if not txn.splits and txn.category_id != action.category_id:
                txn = replace(txn, category_id=action.category_id)
        elif isinstance(action, RenameDescription):
            if renames and txn.description != action.description:
                txn = replace(txn, description=action.description)
        else:
            notes = add_note(txn.notes, action.note)
            if notes is not None and notes != txn.notes:
                txn = replace(txn, notes=notes)
    return txn


def apply_rules(rules: Iterable[Rule], txn: Transaction) -> tuple[Transaction, list[str]]:
    """The transaction after the rules (see the module docstring), and the ids of the rules
    that matched. Idempotent: applying the result again changes nothing. For skipped rules
    and loops, or many transactions, use `RuleSet(rules).apply(txn)`."""
    outcome = RuleSet(rules).apply(txn)
    return outcome.transaction, list(outcome.applied)
