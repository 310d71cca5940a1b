"""Reading imports and their staged rows, and the user's review of a row (include it or
not; a conflict's resolution) while the import is ready."""

from __future__ import annotations

from dataclasses import replace

from valorize.domain.errors import Conflict, ValidationFailed
from valorize.domain.imports import Classification, Import, ImportStatus, Resolution, StagedRow
from valorize.service.imports.base import ImportsBase
from valorize.service.ports import PageResult
from valorize.service.requests.imports import UpdateImportRow


class Review(ImportsBase):
    def list_imports(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Import]:
        return self.repo.list_imports(user_id, limit, cursor)

    def rows(
        self,
        user_id: str,
        import_id: str,
        classification: Classification | None,
        limit: int,
        cursor: str | None,
    ) -> PageResult[StagedRow]:
        self.get(user_id, import_id)
        return self.repo.list_rows(user_id, import_id, classification, limit, cursor)

    # --- review -------------------------------------------------------------------------------

    def update_row(self, user_id: str, import_id: str, row: str, cmd: UpdateImportRow) -> StagedRow:
        self.get(user_id, import_id)

        def mutate(record: Import, current: StagedRow) -> StagedRow:
            if record.status is not ImportStatus.READY:
                raise Conflict(
                    f"rows can change only while the import is ready for review; it is "
                    f"{record.status.value}"
                )
            return _review(current, cmd)

        return self.repo.update_row(user_id, import_id, row, mutate)


def _review(row: StagedRow, cmd: UpdateImportRow) -> StagedRow:
    include, resolution = cmd.include, cmd.resolution
    if row.classification is Classification.ERROR:
        if include or resolution is not None:
            raise ValidationFailed.on(
                "include",
                f"line {row.line_no} could not be read ({row.reason}); it cannot be imported",
            )
        return row
    if row.classification is Classification.CONFLICT:
        if resolution is None:
            assert include is not None
            resolution = Resolution.IMPORT_ANYWAY if include else Resolution.KEEP_EXISTING
        wanted = resolution is Resolution.IMPORT_ANYWAY
        if include is not None and include != wanted:
            raise ValidationFailed.on(
                "include", f"contradicts resolution {resolution.value}; give one of them"
            )
        return replace(row, include=wanted, resolution=resolution)
    if resolution is not None:
        raise ValidationFailed.on("resolution", "only a conflict takes a resolution")
    assert include is not None
    return replace(row, include=include)
