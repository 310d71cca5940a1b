"""Request bodies and queries of the imports API (validated at the edge, typed inside)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from valorize.domain.imports import Classification, Resolution
from valorize.service.requests import Id, ImportId, Page, RequestModel, one_given


class ListImports(Page):
    pass


class ListImportRows(Page):
    classification: Classification | None = Field(
        default=None, description="Only rows of this classification"
    )


class UpdateImportRow(RequestModel):
    # The document says what the validator below checks: one of the two, not null.
    model_config = ConfigDict(json_schema_extra=one_given("include", "resolution"))

    include: bool | None = Field(
        default=None,
        description="Import this row at commit (for a conflict: true = import_anyway, "
        "false = keep_existing)",
    )
    resolution: Resolution | None = Field(
        default=None, description="Conflicts only: keep_existing or import_anyway"
    )

    @model_validator(mode="after")
    def _something(self) -> UpdateImportRow:
        if self.include is None and self.resolution is None:
            raise ValueError("give include and/or resolution")
        return self


class ImportTask(BaseModel):
    """The body of the ingest worker's Cloud Tasks (process, commit, revert)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    user_id: Id
    import_id: ImportId
