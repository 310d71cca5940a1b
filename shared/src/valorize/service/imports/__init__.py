"""Imports: upload a bank statement, stage it (parse, resolve accounts, classify every line),
let the user review it, commit it as transactions, and undo it.

Where the work happens (one module each, methods of the one `ImportService`, service.py):

* `receive` + `upload` (the HTTP request, upload.py): the file is checked and streamed to
  Cloud Storage as it arrives (`Intake`, intake.py: counted, hashed, never held whole), then
  the import document is created (`uploaded`) and ONE Cloud Task named after the import
  enqueued; answers at once.
* `process` (the Cloud Task, staging.py): two streaming passes over the stored file. The
  first reads it whole without keeping it (validates it, counts lines for progress, finds
  each statement's date range); the second classifies each line and stages it as a row with
  a deterministic id, in batched writes. Safe under duplicate delivery (a finished import is
  left alone) and under a crash anywhere (a re-run stages everything again over the same
  row ids).
* `get`, `list_imports`, `rows`, `update_row` (review.py): what the user reads and decides.
* `commit` / `revert` (ledger_runs.py): inline below `inline_rows` rows, else as a Cloud Task
  (202); both resume where an interrupted run stopped and can never write a row twice (each
  committed row is marked in the same batch as its transaction; transaction ids are derived
  from the row; deletes carry a precondition).
"""

from valorize.service.imports.intake import (
    MAX_STATEMENT_BYTES,
    Intake,
    PayloadTooLarge,
    UnsupportedMedia,
    Upload,
    too_large,
)
from valorize.service.imports.ledger_runs import COMMIT_CHUNK, INLINE_ROWS
from valorize.service.imports.service import ImportService
from valorize.service.imports.staging import ImportFailed

__all__ = [
    "COMMIT_CHUNK",
    "INLINE_ROWS",
    "MAX_STATEMENT_BYTES",
    "ImportFailed",
    "ImportService",
    "Intake",
    "PayloadTooLarge",
    "UnsupportedMedia",
    "Upload",
    "too_large",
]
