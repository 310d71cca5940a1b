"""The upload (the HTTP request): `receive` gets an `Intake` ready for the file (intake.py),
`upload` checks the form, keeps the file, creates the import (`uploaded`) and enqueues ONE
Cloud Task named after it (its processing: staging.py); it answers at once."""

from __future__ import annotations

import logging
from typing import Final

from valorize.domain.errors import Unavailable, ValidationFailed
from valorize.domain.imports import Import, ImportStatus, import_id_for_key
from valorize.domain.statements import PRESETS
from valorize.domain.statements.api import Format
from valorize.service.imports.base import FUNCTION, QUEUE, ImportsBase
from valorize.service.imports.intake import Intake, Upload

log = logging.getLogger(__name__)

PROCESS_PATH: Final = "/api/ingest/tasks/process"


class Uploads(ImportsBase):
    def receive(self, user_id: str, idempotency_key: str | None) -> Intake:
        """Get ready for an upload's file (see `Intake`); then `upload` with its form."""
        prior: Import | None = None
        if idempotency_key is not None:
            import_id = import_id_for_key(user_id, idempotency_key)
            prior = self.repo.get_import(user_id, import_id)
            # The object is named per attempt, so a concurrent retry never overwrites the
            # file of the attempt that creates the import.
            object_id = self.ids.new_id()
        else:
            import_id = object_id = self.ids.new_id()
        base = f"imports/{user_id}/{object_id}"
        return Intake(self.files, base, self.max_bytes, import_id, prior)

    def upload(self, user_id: str, up: Upload, intake: Intake) -> tuple[Import, bool]:
        """Check the form, keep the file the intake received, create the import, enqueue its
        processing. Returns the import and whether this was an Idempotency-Key replay of an
        earlier upload. On any error nothing is left (the intake's object is dropped)."""
        if (
            up.account_id is not None
            and self.account_store.get_account(user_id, up.account_id) is None
        ):
            raise ValidationFailed.on("account_id", "no such account")
        if up.format == "ofx" and (up.mapping is not None or up.preset is not None):
            raise ValidationFailed.on("mapping", "a column mapping or preset applies to CSV only")
        if up.preset is not None and up.preset not in PRESETS and up.preset != "generic":
            known = ", ".join([*sorted(PRESETS), "generic"])
            raise ValidationFailed.on("preset", f"unknown preset; known: {known}")
        intake.finish()
        if intake.prior is not None:
            return self._replay(intake.prior, intake.digest), True
        fmt: Format | None = up.format or intake.sniffed
        if fmt == "ofx" and up.format is None:
            mapping, preset = None, None  # a sniffed OFX ignores CSV options
        else:
            mapping = up.mapping.model_dump_json() if up.mapping else None
            preset = up.preset
        assert intake.object_name is not None
        now = self.clock.now()
        record = Import(
            id=intake.import_id,
            status=ImportStatus.UPLOADED,
            file_name=_file_name(up.file_name),
            object_name=intake.object_name,
            size=intake.size,
            sha256=intake.digest,
            created_at=now,
            updated_at=now,
            format=fmt,
            preset=preset,
            mapping=mapping,
            currency=up.currency,
            account_id=up.account_id,
        )
        intake.store()
        prior = self.repo.create_import(user_id, record)
        if prior is not None:  # a concurrent retry with the same key won
            return self._replay(prior, intake.digest), True
        intake.keep()
        try:
            self.queue.enqueue(
                QUEUE,
                FUNCTION,
                PROCESS_PATH,
                {"user_id": user_id, "import_id": record.id},
                name=f"import-{record.id}",
            )
        except Exception as error:
            log.exception("enqueueing import %s failed", record.id)
            self._fail(user_id, record.id, "The import could not be queued; upload the file again")
            raise Unavailable("the import queue is unavailable; retry shortly") from error
        return record, False

    @staticmethod
    def _replay(prior: Import, digest: str) -> Import:
        if prior.sha256 != digest:
            raise ValidationFailed.on(
                "Idempotency-Key", "reused with a different request (another file)"
            )
        return prior


def _file_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = "".join(c for c in base if c.isprintable())
    return cleaned[:255] or "statement"
