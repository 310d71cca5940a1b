"""The RuleStore port.

users/{uid}/rules/{id}                 name, rank (order key; positions are derived),
                                       enabled, match, stop, conditions/actions
users/{uid}/settings/rules             count (of rules: holds the limit without a read)
users/{uid}/rule_jobs/{id}             params (ApplyRules JSON), status, processed,
                                       changed, pages
users/{uid}/rule_jobs/{id}/pages/{n}   cursor, next_cursor, processed, changed, done
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.contention import commit, unchanged
from valorize.adapters.firestore.documents import (
    job_doc,
    job_of,
    page_doc,
    page_of,
    rule_doc,
    rule_of,
)
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage
from valorize.domain.errors import NotFound
from valorize.domain.limits import check_ceiling
from valorize.domain.rules import MAX_RULES, Rule, numbered


class FirestoreRules(FirestoreAdapter):
    def _rule_snaps(self, user_id: str) -> list[Any]:
        # At most MAX_RULES, and for a moment a few more while refused creates are undone.
        return list(self._col(user_id, "rules").limit(2 * MAX_RULES).stream())

    def _counter(self, user_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "settings").document("rules")
        return ref

    def list_rules(self, user_id: str) -> list[Rule]:
        return numbered(rule_of(s.id, s.to_dict() or {}) for s in self._rule_snaps(user_id))

    def add_rule(
        self, user_id: str, place: Callable[[list[Rule]], Rule], limit: int = MAX_RULES
    ) -> Rule:
        order = self.list_rules(user_id)
        check_ceiling("rules", len(order), limit)
        rule = place(order)
        ref = self._col(user_id, "rules").document(rule.id)
        counter = self._counter(user_id)
        # The limit without a transaction: the create and the count's increment commit
        # together, and the increment's result says how many rules there are now.
        batch = self.db.batch()
        batch.create(ref, rule_doc(rule))
        batch.set(counter, {"count": firestore.Increment(1)}, merge=True)
        count = batch.commit()[1].transform_results[0].integer_value
        if count > limit:
            undo = self.db.batch()
            undo.delete(ref)
            undo.set(counter, {"count": firestore.Increment(-1)}, merge=True)
            undo.commit()
            check_ceiling("rules", count - 1, limit)
        return next(x for x in numbered([*order, rule]) if x.id == rule.id)

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        def attempt() -> Rule:
            snaps = {s.id: s for s in self._rule_snaps(user_id)}
            if rule_id not in snaps:
                raise NotFound("rule not found")
            order = numbered(rule_of(i, s.to_dict() or {}) for i, s in snaps.items())
            others = [x for x in order if x.id != rule_id]
            new = mutate(next(x for x in order if x.id == rule_id), others)
            batch = self.db.batch()
            batch.update(snaps[rule_id].reference, rule_doc(new), option=unchanged(snaps[rule_id]))
            commit(batch)
            return next(x for x in numbered([*others, new]) if x.id == rule_id)

        return self._optimistic(attempt)

    def delete_rule(self, user_id: str, rule_id: str) -> bool:
        batch = self.db.batch()
        batch.delete(
            self._col(user_id, "rules").document(rule_id),
            option=self.db.write_option(exists=True),
        )
        batch.set(self._counter(user_id), {"count": firestore.Increment(-1)}, merge=True)
        try:
            batch.commit()
        except gexc.NotFound:
            return False  # of two deletes racing, only one counts
        return True

    # --- on-demand rules runs -----------------------------------------------------------------

    def _job_ref(self, user_id: str, job_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "rule_jobs").document(job_id)
        return ref

    def add_rule_job(self, user_id: str, job: RuleJob) -> None:
        self._job_ref(user_id, job.id).create(job_doc(job))

    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None:
        snap = self._job_ref(user_id, job_id).get()
        return job_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        ref = self._job_ref(user_id, job_id).collection("pages").document(str(page.index))
        try:
            ref.create(page_doc(page))
        except gexc.AlreadyExists:
            return page_of(ref.get().to_dict() or {})
        return page

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        job_ref = self._job_ref(user_id, job_id)
        page_ref = job_ref.collection("pages").document(str(index))

        def attempt() -> bool:
            snap = page_ref.get()
            if not snap.exists:
                raise NotFound("no such page")
            page = page_of(snap.to_dict() or {})
            if page.done:
                return False
            batch = self.db.batch()
            batch.update(page_ref, {"done": True}, option=unchanged(snap))
            last = page.next_cursor is None
            batch.update(
                job_ref,
                {
                    "processed": firestore.Increment(page.processed),
                    "changed": firestore.Increment(page.changed),
                    "pages": firestore.Increment(1),
                    "status": (JobStatus.DONE if last else JobStatus.RUNNING).value,
                    "updated_at": now,
                    "finished_at": now if last else None,
                },
            )
            commit(batch)
            return True

        return self._optimistic(attempt)
