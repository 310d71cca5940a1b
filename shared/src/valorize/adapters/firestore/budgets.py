"""The BudgetStore port.

users/{uid}/budgets/{category_id}     one envelope per category
users/{uid}/settings/budget_income    months: {YYYY-MM: amount}; allocation_writes (a
                                      guard every allocation change bumps)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from google.api_core import exceptions as gexc
from google.cloud import firestore

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.contention import commit, unchanged
from valorize.adapters.firestore.documents import budget_doc, budget_of
from valorize.domain.budget import Budget
from valorize.domain.errors import NotFound


class FirestoreBudgets(FirestoreAdapter):
    def _budget_ref(self, user_id: str, budget_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "budgets").document(budget_id)
        return ref

    def _income_ref(self, user_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "settings").document("budget_income")
        return ref

    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]:
        try:
            self._budget_ref(user_id, budget.id).create(budget_doc(budget))
        except gexc.AlreadyExists:
            existing = self.get_budget(user_id, budget.id)
            if existing is None:  # deleted in between: try once more
                return self.add_budget(user_id, budget)
            return existing, False
        return budget, True

    def get_budget(self, user_id: str, budget_id: str) -> Budget | None:
        snap = self._budget_ref(user_id, budget_id).get()
        return budget_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_budgets(self, user_id: str) -> list[Budget]:
        return [budget_of(s.id, s.to_dict() or {}) for s in self._col(user_id, "budgets").stream()]

    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget:
        try:
            self._budget_ref(user_id, budget_id).update({"name": name, "updated_at": now})
        except gexc.NotFound:
            raise NotFound("budget not found") from None
        found = self.get_budget(user_id, budget_id)
        if found is None:
            raise NotFound("budget not found")
        return found

    def delete_budget(self, user_id: str, budget_id: str) -> bool:
        return self._delete_existing(self._budget_ref(user_id, budget_id))

    def get_incomes(self, user_id: str) -> dict[str, int]:
        snap = self._income_ref(user_id).get()
        return dict((snap.to_dict() or {}).get("months", {})) if snap.exists else {}

    def set_income(self, user_id: str, month: str, amount: int) -> None:
        self._income_ref(user_id).set({"months": {month: amount}}, merge=True)

    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]:
        budgets_col = self._col(user_id, "budgets")
        income_ref = self._income_ref(user_id)

        def attempt() -> list[Budget]:
            # The guard first (see below): envelopes read after it include every change that
            # committed before it was read.
            income_snap = income_ref.get()
            incomes = dict((income_snap.to_dict() or {}).get("months", {}))
            # One envelope per category: a few dozen documents, well under the limit.
            snaps = {s.id: s for s in budgets_col.limit(1000).stream()}
            budgets = {i: budget_of(i, s.to_dict() or {}) for i, s in snaps.items()}
            for budget_id in budget_ids:
                if budget_id not in budgets:
                    raise NotFound("budget not found")
            changed = mutate(budgets, incomes)
            batch = self.db.batch()
            for b in changed:
                batch.update(
                    budgets_col.document(b.id),
                    {"allocations": dict(b.allocations), "updated_at": b.updated_at},
                    option=unchanged(snaps[b.id]),
                )
            if income_snap.exists:
                # The cap depends on every envelope, not only those written: each change also
                # bumps the income document, so of two racing changes only one commits.
                batch.update(
                    income_ref,
                    {"allocation_writes": firestore.Increment(1)},
                    option=unchanged(income_snap),
                )
            commit(batch)
            return changed

        return self._optimistic(attempt)
