"""In-memory stand-ins for the service layer's ports (valorize.service.ports).

`InMemoryStore` mirrors the semantics of `valorize.adapters.firestore_store.FirestoreStore`
(scoping, uniqueness, idempotency, counters, ordering, cursors, error classes and messages), so
service tests run in microseconds without an emulator. Every write is all-or-nothing: checks
run before the first change, like a Firestore batch or transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from valorize.domain import ids
from valorize.domain.automation import (
    JobStatus,
    Materialization,
    RuleJob,
    RuleJobPage,
    scheduled_next,
)
from valorize.domain.budget import Budget
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.limits import LedgerReach, Reach, check
from valorize.domain.model import Account, ApiToken, Category, Transaction, User
from valorize.domain.readmodel import change, merge_changes, recompute
from valorize.domain.recurrence import Recurrence
from valorize.domain.rules import Rule, check_rule_count, numbered
from valorize.service.ports import (
    Clock,
    IdempotencyRecord,
    IdempotentReplay,
    PageResult,
    TransactionFilter,
)

# Same bounds as the Firestore adapter.
SCAN_LIMIT = 2000


class AlreadyExists(Exception):
    """A create met an existing document with no friendlier error (Firestore: a 500)."""


@dataclass
class _Space:
    """Everything under users/{uid}."""

    user: User | None = None
    accounts: dict[str, Account] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    category_names: dict[str, str] = field(default_factory=dict)  # name_key -> category id
    transactions: dict[str, Transaction] = field(default_factory=dict)
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)
    incomes: dict[str, int] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    rule_jobs: dict[str, RuleJob] = field(default_factory=dict)
    rule_job_pages: dict[tuple[str, int], RuleJobPage] = field(default_factory=dict)
    recurrences: dict[str, Recurrence] = field(default_factory=dict)
    automation_runs: dict[str, dict[str, Any]] = field(default_factory=dict)


class InMemoryStore:
    """The `Store` port in memory. `clock` (optional) decides idempotency-record expiry; the
    Firestore adapter uses the wall clock, which is the default here too."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.spaces: dict[str, _Space] = {}
        self.credentials: dict[str, tuple[str, str]] = {}  # email -> (user_id, password_hash)
        self.tokens: dict[str, tuple[ApiToken, str]] = {}  # token id -> (token, secret_hash)
        self.writes = 0  # committed writes, for tests that care whether anything happened

    # --- helpers ------------------------------------------------------------------------------

    def _space(self, user_id: str) -> _Space:
        return self.spaces.setdefault(user_id, _Space())

    def _now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def _check_idem(self, scope: str, idem: IdempotencyRecord | None) -> None:
        # Firestore creates the record in the same batch: an existing one (even expired, as
        # the adapter reads it back with drop_expired=False) fails the batch as a replay.
        if idem is None:
            return
        prior = self._space(scope).idempotency.get(idem.key_hash)
        if prior is not None:
            raise IdempotentReplay(prior)

    def _save_idem(self, scope: str, idem: IdempotencyRecord | None) -> None:
        if idem is not None:
            self._space(scope).idempotency[idem.key_hash] = idem

    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]:
        # Derived from scratch: the fake is the oracle the Firestore increments must match.
        model = recompute(self._space(user_id).transactions.values())
        return {m: model[m] for m in dict.fromkeys(months) if m in model}

    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]:
        model = recompute(self._space(user_id).transactions.values())
        return {m: v for m, v in model.items() if m >= month}

    def get_totals(self, user_id: str) -> dict[str, Any]:
        everything = [t for t in self._space(user_id).transactions.values()]
        merged = recompute(
            replace(t, date=t.date.replace(year=2000, month=1, day=1)) for t in everything
        )
        return merged.get("2000-01", {})

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        accounts = self._space(user_id).accounts
        balances = {a.id: (a.name, a.balance) for a in accounts.values()}
        check(reach, balances, self.get_totals(user_id), field_name)

    def _check_ledger(
        self, user_id: str, old: Sequence[Transaction], new: Sequence[Transaction]
    ) -> None:
        """What the adapter checks before a ledger write that replaces `old` with `new`."""
        moved: dict[str, int] = {}
        for t in old:
            moved[t.account_id] = moved.get(t.account_id, 0) - t.amount
        for t in new:
            moved[t.account_id] = moved.get(t.account_id, 0) + t.amount
        months = merge_changes(*(change(t, None) for t in old), *(change(None, t) for t in new))
        self.check_limits(user_id, LedgerReach.of(moved, months))

    # --- budgets ------------------------------------------------------------------------------

    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]:
        space = self._space(user_id)
        if budget.id in space.budgets:
            return space.budgets[budget.id], False
        space.budgets[budget.id] = budget
        self.writes += 1
        return budget, True

    def get_budget(self, user_id: str, budget_id: str) -> Budget | None:
        return self._space(user_id).budgets.get(budget_id)

    def list_budgets(self, user_id: str) -> list[Budget]:
        return list(self._space(user_id).budgets.values())

    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget:
        space = self._space(user_id)
        if budget_id not in space.budgets:
            raise NotFound("budget not found")
        space.budgets[budget_id] = replace(space.budgets[budget_id], name=name, updated_at=now)
        return space.budgets[budget_id]

    def delete_budget(self, user_id: str, budget_id: str) -> bool:
        return self._space(user_id).budgets.pop(budget_id, None) is not None

    def get_incomes(self, user_id: str) -> dict[str, int]:
        return dict(self._space(user_id).incomes)

    def set_income(self, user_id: str, month: str, amount: int) -> None:
        self._space(user_id).incomes[month] = amount

    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]:
        space = self._space(user_id)
        for budget_id in budget_ids:
            if budget_id not in space.budgets:
                raise NotFound("budget not found")
        changed = mutate(dict(space.budgets), dict(space.incomes))
        for b in changed:
            space.budgets[b.id] = b
        return changed

    def claim_idempotency(self, scope: str, claim: IdempotencyRecord) -> IdempotencyRecord | None:
        space = self._space(scope)
        if claim.key_hash in space.idempotency:
            return space.idempotency[claim.key_hash]
        space.idempotency[claim.key_hash] = claim
        return None

    def put_idempotency(self, scope: str, record: IdempotencyRecord) -> None:
        self._space(scope).idempotency[record.key_hash] = record

    def drop_idempotency(self, scope: str, key_hash: str) -> None:
        self._space(scope).idempotency.pop(key_hash, None)

    def get_idempotency(
        self, scope: str, key_hash: str, drop_expired: bool = True
    ) -> IdempotencyRecord | None:
        space = self._space(scope)
        record = space.idempotency.get(key_hash)
        if record is None:
            return None
        if drop_expired and record.expires_at <= self._now():
            del space.idempotency[key_hash]
            return None
        return record

    # --- users and tokens ---------------------------------------------------------------------

    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None:
        space = self.spaces.get(user.id)
        keys = [c.name_key for c in categories]
        if (
            user.email in self.credentials
            or (space is not None and space.user is not None)
            or len(set(keys)) != len(keys)
            or token.id in self.tokens
        ):
            raise Conflict("an account with this email already exists")
        space = self._space(user.id)
        if any(k in space.category_names for k in keys) or any(
            c.id in space.categories for c in categories
        ):
            raise Conflict("an account with this email already exists")
        self.credentials[user.email] = (user.id, password_hash)
        space.user = user
        for c in categories:
            space.categories[c.id] = c
            space.category_names[c.name_key] = c.id
        self.tokens[token.id] = (token, secret_hash)
        self.writes += 1

    def get_user(self, user_id: str) -> User | None:
        space = self.spaces.get(user_id)
        return space.user if space is not None else None

    def find_credentials(self, email: str) -> tuple[str, str] | None:
        return self.credentials.get(email)

    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None:
        self._check_idem(token.user_id, idem)
        if token.id in self.tokens:
            raise AlreadyExists(f"tokens/{token.id}")
        self.tokens[token.id] = (token, secret_hash)
        self._save_idem(token.user_id, idem)
        self.writes += 1

    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        if not ids.ENTITY.matches(token_id):
            return None
        return self.tokens.get(token_id)

    def touch_token(self, token_id: str, when: datetime) -> None:
        found = self.tokens.get(token_id)
        if found is None:
            return  # revoked meanwhile
        token, hashed = found
        self.tokens[token_id] = (replace(token, last_used_at=when), hashed)
        self.writes += 1

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        tokens = [t for t, _ in self.tokens.values() if t.user_id == user_id]
        return sorted(tokens, key=lambda t: t.created_at, reverse=True)

    def delete_token(self, user_id: str, token_id: str) -> bool:
        found = self.get_token(token_id)
        if found is None or found[0].user_id != user_id:
            return False
        del self.tokens[token_id]
        self.writes += 1
        return True

    # --- accounts -----------------------------------------------------------------------------

    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None:
        self._check_idem(user_id, idem)
        space = self._space(user_id)
        if account.id in space.accounts:
            raise AlreadyExists(f"accounts/{account.id}")
        space.accounts[account.id] = account
        self._save_idem(user_id, idem)
        self.writes += 1

    def get_account(self, user_id: str, account_id: str) -> Account | None:
        return self._space(user_id).accounts.get(account_id)

    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
        accounts = self._space(user_id).accounts
        return {i: accounts[i] for i in dict.fromkeys(account_ids) if i in accounts}

    def list_accounts(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        rows = sorted(self._space(user_id).accounts.values(), key=lambda a: a.id)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            rows = [a for a in rows if a.id > after]
        page = rows[: limit + 1]
        nxt = encode_cursor(page[limit - 1].id) if len(page) > limit else None
        return PageResult(page[:limit], nxt)

    def update_account(
        self, user_id: str, account_id: str, mutate: Callable[[Account], Account]
    ) -> Account:
        accounts = self._space(user_id).accounts
        old = accounts.get(account_id)
        if old is None:
            raise NotFound("account not found")
        new = mutate(old)
        moved = LedgerReach({old.id: Reach.of(new.balance - old.balance)})
        self.check_limits(user_id, moved, "opening_balance")
        # The adapter writes every field but the counter, and the balance as a delta.
        accounts[account_id] = replace(
            new,
            id=account_id,
            transaction_count=old.transaction_count,
            balance=old.balance + (new.balance - old.balance),
        )
        self.writes += 1
        return new

    def delete_account(self, user_id: str, account_id: str) -> None:
        space = self._space(user_id)
        if account_id not in space.accounts:
            raise NotFound("account not found")  # the adapter's update() of a missing doc
        for t in [t for t in space.transactions.values() if t.account_id == account_id]:
            del space.transactions[t.id]
            # The other side of a transfer stays in its account, still a transfer, unlinked.
            cp = space.transactions.get(t.counterpart_id) if t.counterpart_id else None
            if cp is not None and t.counterpart_account_id != account_id:
                space.transactions[cp.id] = replace(
                    cp, counterpart_id=None, counterpart_account_id=None
                )
        del space.accounts[account_id]
        self.writes += 1

    # --- categories ---------------------------------------------------------------------------

    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None:
        self._check_idem(user_id, idem)
        space = self._space(user_id)
        if category.name_key in space.category_names or category.id in space.categories:
            raise Conflict(f"a category named {category.name!r} already exists")
        space.categories[category.id] = category
        space.category_names[category.name_key] = category.id
        self._save_idem(user_id, idem)
        self.writes += 1

    def get_category(self, user_id: str, category_id: str) -> Category | None:
        return self._space(user_id).categories.get(category_id)

    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]:
        categories = self._space(user_id).categories
        return {i: categories[i] for i in dict.fromkeys(ids) if i in categories}

    def list_categories(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        rows = sorted(self._space(user_id).categories.values(), key=lambda c: c.name_key)
        if cursor:
            after = decode_cursor(cursor, ids.NAME_KEY_CURSOR)
            rows = [c for c in rows if c.name_key > after]
        page = rows[: limit + 1]
        items = page[:limit]
        nxt = encode_cursor(items[-1].name_key) if len(page) > limit else None
        return PageResult(items, nxt)

    def update_category(self, user_id: str, old: Category, new: Category) -> None:
        space = self._space(user_id)
        if old.id not in space.categories:
            raise NotFound("a referenced resource no longer exists")
        if old.name_key != new.name_key and new.name_key in space.category_names:
            raise Conflict(f"a category named {new.name!r} already exists")
        if old.name_key != new.name_key:
            del space.category_names[old.name_key]
            space.category_names[new.name_key] = new.id
        space.categories[old.id] = new
        self.writes += 1

    def has_children(self, user_id: str, category_id: str) -> bool:
        return any(c.parent_id == category_id for c in self._space(user_id).categories.values())

    def category_in_use(self, user_id: str, category_id: str) -> bool:
        return any(
            category_id in t.category_ids for t in self._space(user_id).transactions.values()
        )

    def delete_category(self, user_id: str, category: Category, replacement_id: str | None) -> None:
        space = self._space(user_id)
        cid = category.id
        for t in [t for t in space.transactions.values() if cid in t.category_ids]:
            space.transactions[t.id] = replace(
                t,
                category_id=replacement_id if t.category_id == cid else t.category_id,
                splits=tuple(
                    replace(s, category_id=replacement_id) if s.category_id == cid else s
                    for s in t.splits
                ),
            )
        # Subcategories outlive their parent as top-level categories.
        for child in [c for c in space.categories.values() if c.parent_id == cid]:
            space.categories[child.id] = replace(child, parent_id=None)
        space.categories.pop(cid, None)
        space.category_names.pop(category.name_key, None)
        self.writes += 1

    # --- transactions -------------------------------------------------------------------------

    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
    ) -> None:
        self._check_idem(user_id, idem)
        space = self._space(user_id)
        ids = [t.id for t in transactions]
        if len(set(ids)) != len(ids) or any(i in space.transactions for i in ids):
            raise AlreadyExists("transactions")
        deltas: dict[str, tuple[int, int]] = {}
        for t in transactions:
            amount, count = deltas.get(t.account_id, (0, 0))
            deltas[t.account_id] = (amount + t.amount, count + 1)
        if any(a not in space.accounts for a in deltas):
            raise NotFound("a referenced resource no longer exists")
        self._check_ledger(user_id, [], transactions)
        for t in transactions:
            space.transactions[t.id] = t
        for account_id, (amount, count) in deltas.items():
            a = space.accounts[account_id]
            space.accounts[account_id] = replace(
                a, balance=a.balance + amount, transaction_count=a.transaction_count + count
            )
        self._save_idem(user_id, idem)
        self.writes += 1

    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None:
        return self._space(user_id).transactions.get(transaction_id)

    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], tuple[Transaction, Transaction | None]],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        space = self._space(user_id)
        old = space.transactions.get(transaction_id)
        if old is None:
            raise NotFound("transaction not found")
        old_cp = space.transactions.get(old.counterpart_id) if old.counterpart_id else None
        new, new_cp = mutate(old, old_cp)
        moves: dict[str, int] = {}
        if new.amount != old.amount:
            moves[old.account_id] = moves.get(old.account_id, 0) + new.amount - old.amount
        if old_cp is not None and new_cp is not None and new_cp.amount != old_cp.amount:
            moves[old_cp.account_id] = (
                moves.get(old_cp.account_id, 0) + new_cp.amount - old_cp.amount
            )
        if any(a not in space.accounts for a in moves):
            raise NotFound("the transaction's account no longer exists")
        pairs = [(old, new)] + ([(old_cp, new_cp)] if old_cp and new_cp else [])
        self._check_ledger(user_id, [o for o, _ in pairs], [n for _, n in pairs])
        space.transactions[transaction_id] = new
        if old_cp is not None and new_cp is not None:
            space.transactions[old_cp.id] = new_cp
        for account_id, delta in moves.items():
            a = space.accounts[account_id]
            space.accounts[account_id] = replace(a, balance=a.balance + delta)
        self.writes += 1
        return old, new, old_cp, new_cp

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        space = self._space(user_id)
        victim = space.transactions.get(transaction_id)
        if victim is None:
            raise NotFound("transaction not found")
        victims = [victim]
        # Deleting one side of a transfer deletes both.
        if victim.counterpart_id and victim.counterpart_id in space.transactions:
            victims.append(space.transactions[victim.counterpart_id])
        if any(t.account_id not in space.accounts for t in victims):
            raise NotFound("the transaction's account no longer exists")
        self._check_ledger(user_id, victims, [])
        for t in victims:
            del space.transactions[t.id]
            a = space.accounts[t.account_id]
            space.accounts[t.account_id] = replace(
                a, balance=a.balance - t.amount, transaction_count=a.transaction_count - 1
            )
        self.writes += 1
        return victims

    @staticmethod
    def _indexed(t: Transaction, flt: TransactionFilter) -> bool:
        """The part of the filter the adapter hands to the Firestore query."""
        if flt.account_id is not None and t.account_id != flt.account_id:
            return False
        if flt.type is not None and t.type.value != flt.type:
            return False
        if flt.import_id is not None and t.import_id != flt.import_id:
            return False
        if flt.category_id is not None and flt.category_id not in t.category_ids:
            return False
        if flt.date_from is not None and not t.sort_key >= flt.date_from:
            return False
        # "$" sorts right after "#", so every key of that day is included.
        return flt.date_to is None or t.sort_key < flt.date_to + "$"

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]:
        position = decode_cursor(cursor, ids.TRANSACTION_CURSOR) if cursor else None
        rows = sorted(
            (t for t in self._space(user_id).transactions.values() if self._indexed(t, flt)),
            key=lambda t: t.sort_key,
            reverse=True,
        )
        if position is not None:
            rows = [t for t in rows if t.sort_key < position]
        if flt.predicate is None:
            page = rows[: limit + 1]
            head = page[:limit]
            return PageResult(head, encode_cursor(head[-1].sort_key) if len(page) > limit else None)
        items: list[Transaction] = []
        last_seen: str | None = None
        scanned = 0
        for t in rows[:SCAN_LIMIT]:
            scanned += 1
            last_seen = t.sort_key
            if flt.predicate(t):
                items.append(t)
                if len(items) == limit:
                    break
        exhausted = scanned < SCAN_LIMIT and len(items) < limit
        if exhausted or last_seen is None:
            return PageResult(items, None)
        return PageResult(items, encode_cursor(last_seen))

    # --- rules --------------------------------------------------------------------------------

    def list_rules(self, user_id: str) -> list[Rule]:
        return numbered(self._space(user_id).rules.values())

    def add_rule(self, user_id: str, place: Callable[[list[Rule]], Rule]) -> Rule:
        order = self.list_rules(user_id)
        check_rule_count(len(order))
        rule = place(order)
        self._space(user_id).rules[rule.id] = rule
        self.writes += 1
        return next(x for x in self.list_rules(user_id) if x.id == rule.id)

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        order = self.list_rules(user_id)
        current = next((x for x in order if x.id == rule_id), None)
        if current is None:
            raise NotFound("rule not found")
        new = mutate(current, [x for x in order if x.id != rule_id])
        self._space(user_id).rules[rule_id] = new
        self.writes += 1
        return next(x for x in self.list_rules(user_id) if x.id == rule_id)

    def delete_rule(self, user_id: str, rule_id: str) -> bool:
        self.writes += 1
        return self._space(user_id).rules.pop(rule_id, None) is not None

    # --- on-demand rules runs -----------------------------------------------------------------

    def add_rule_job(self, user_id: str, job: RuleJob) -> None:
        space = self._space(user_id)
        if job.id in space.rule_jobs:
            raise AlreadyExists(f"rule_jobs/{job.id}")
        space.rule_jobs[job.id] = job
        self.writes += 1

    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None:
        return self._space(user_id).rule_jobs.get(job_id)

    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        pages = self._space(user_id).rule_job_pages
        return pages.setdefault((job_id, page.index), page)

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        space = self._space(user_id)
        page = space.rule_job_pages.get((job_id, index))
        if page is None:
            raise NotFound("no such page")
        if page.done:
            return False
        job = space.rule_jobs.get(job_id)
        if job is None:
            raise NotFound("a referenced resource no longer exists")
        last = page.next_cursor is None
        space.rule_job_pages[(job_id, index)] = replace(page, done=True)
        space.rule_jobs[job_id] = replace(
            job,
            processed=job.processed + page.processed,
            changed=job.changed + page.changed,
            pages=job.pages + 1,
            status=JobStatus.DONE if last else JobStatus.RUNNING,
            updated_at=now,
            finished_at=now if last else None,
        )
        self.writes += 1
        return True

    # --- recurrences --------------------------------------------------------------------------

    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None:
        self._check_idem(user_id, idem)
        space = self._space(user_id)
        if recurrence.id in space.recurrences:
            raise AlreadyExists(f"recurrences/{recurrence.id}")
        space.recurrences[recurrence.id] = recurrence
        self._save_idem(user_id, idem)
        self.writes += 1

    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None:
        return self._space(user_id).recurrences.get(recurrence_id)

    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]:
        rows = sorted(self._space(user_id).recurrences.values(), key=lambda r: r.id)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            rows = [r for r in rows if r.id > after]
        page = rows[: limit + 1]
        items = page[:limit]
        return PageResult(items, encode_cursor(items[-1].id) if len(page) > limit else None)

    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence:
        space = self._space(user_id)
        old = space.recurrences.get(recurrence_id)
        if old is None:
            raise NotFound("recurrence not found")
        new = mutate(old)
        space.recurrences[recurrence_id] = new
        self.writes += 1
        return new

    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool:
        found = self._space(user_id).recurrences.pop(recurrence_id, None) is not None
        self.writes += found
        return found

    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        return [
            r
            for r in self._space(user_id).recurrences.values()
            if (upcoming := scheduled_next(r)) is not None and upcoming <= on
        ]

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        space = self._space(user_id)
        rec = space.recurrences.get(recurrence_id)
        if rec is None:
            return None
        step = plan(rec)
        if step is None:
            return None
        fresh = [t for t in step.transactions if t.id not in space.transactions]
        if any(t.account_id not in space.accounts for t in fresh):
            raise NotFound("the recurrence's account no longer exists")
        self._check_ledger(user_id, [], fresh)
        for t in fresh:
            space.transactions[t.id] = t
            a = space.accounts[t.account_id]
            space.accounts[t.account_id] = replace(
                a, balance=a.balance + t.amount, transaction_count=a.transaction_count + 1
            )
        # Only the scheduler's fields: a concurrent edit of the rest is kept.
        space.recurrences[recurrence_id] = replace(
            rec, materialized_through=step.recurrence.materialized_through
        )
        self.writes += 1
        return step.recurrence, fresh

    # --- the scheduler's fan-out --------------------------------------------------------------

    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        rows = sorted(
            (str(upcoming), f"users/{uid}/recurrences/{r.id}", uid)
            for uid, space in self.spaces.items()
            for r in space.recurrences.values()
            if (upcoming := scheduled_next(r)) is not None and upcoming <= on
        )
        if cursor:
            after = decode_cursor(cursor, ids.DUE_CURSOR)
            rows = [row for row in rows if f"{row[0]}|{row[1]}" > after]
        page = rows[:limit]
        users = list(dict.fromkeys(uid for _, _, uid in page))
        nxt = encode_cursor(f"{page[-1][0]}|{page[-1][1]}") if len(page) == limit else None
        return PageResult(users, nxt)

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]:
        users = sorted(uid for uid, space in self.spaces.items() if space.user is not None)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            users = [i for i in users if i > after]
        page = users[:limit]
        return PageResult(page, encode_cursor(page[-1]) if len(page) == limit else None)

    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None:
        runs = self._space(user_id).automation_runs
        entry = runs.setdefault(run_id, {"runs": 0, "created": 0})
        entry["runs"] += 1
        entry["created"] += created
        entry["last_run_at"] = when


# --- the other ports --------------------------------------------------------------------------


class FakeHasher:
    """Cheap and transparent; `verify` also accepts only what `hash` produced."""

    def __init__(self) -> None:
        self.verified = 0

    def hash(self, password: str) -> str:
        return "hashed:" + password

    def verify(self, hashed: str, password: str) -> bool:
        self.verified += 1
        return hashed == "hashed:" + password


class FakeThrottle:
    """At most `limit` attempts per key before it waits; a success clears the key."""

    def __init__(self, limit: int = 5, wait: int = 900) -> None:
        self.limit = limit
        self.wait = wait
        self.failures: dict[str, int] = {}

    def attempt(self, key: str) -> int:
        self.failures[key] = self.failures.get(key, 0) + 1
        return self.wait if self.failures[key] > self.limit else 0

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


class FixedClock:
    """Time stands still until a test moves it."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2024, 1, 15, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class SeqIds:
    """Sequential, time-ordered, fixed-width lowercase hex ids (like uuid7().hex)."""

    def __init__(self, start: int = 1) -> None:
        self.n = start - 1

    def new_id(self) -> str:
        self.n += 1
        return f"{self.n:032x}"
