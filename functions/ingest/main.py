"""Ingest function (/api/imports): upload a bank statement, review its staged rows, commit,
revert; and the Cloud Tasks worker that stages it (/api/ingest/tasks/*, internal only)
(service/imports/)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.imports import (
    ImportAcceptedOut,
    ImportOut,
    ImportRowOut,
    UploadForm,
    parse_upload,
)
from valorize.entrypoints.routes import Call, Idempotency, Route, task
from valorize.entrypoints.schemas import ListOf
from valorize.service.requests import imports as i


def upload(call: Call) -> Any:
    service = call.services.imports
    with service.receive(call.user_id, call.idempotency_key) as intake:
        record, replayed = service.upload(call.user_id, parse_upload(call.request, intake), intake)
    if replayed:
        call.response_headers["Idempotent-Replayed"] = "true"
    return record


def list_imports(call: Call) -> Any:
    q = call.query
    return call.services.imports.list_imports(call.user_id, q.limit, q.cursor)


def get_import(call: Call) -> Any:
    return call.services.imports.get(call.user_id, call.params["import_id"])


def list_rows(call: Call) -> Any:
    q: i.ListImportRows = call.query
    import_id = call.params["import_id"]
    return call.services.imports.rows(call.user_id, import_id, q.classification, q.limit, q.cursor)


def update_row(call: Call) -> Any:
    import_id, row_id = call.params["import_id"], call.params["row_id"]
    return call.services.imports.update_row(call.user_id, import_id, row_id, call.body)


def commit(call: Call) -> Any:
    record, queued = call.services.imports.commit(call.user_id, call.params["import_id"])
    call.status = 202 if queued else 200
    return record


def revert(call: Call) -> Any:
    record, queued = call.services.imports.revert(call.user_id, call.params["import_id"])
    call.status = 202 if queued else 200
    return record


def task_process(call: Call) -> Any:
    # On the last attempt an unexpected error marks the import failed instead of leaving it
    # "processing" forever.
    last = call.task_retries + 1 >= call.services.settings.import_max_attempts
    return call.services.imports.process(call.body.user_id, call.body.import_id, last_attempt=last)


def task_commit(call: Call) -> Any:
    return call.services.imports.run_commit(call.body.user_id, call.body.import_id)


def task_revert(call: Call) -> Any:
    return call.services.imports.run_revert(call.body.user_id, call.body.import_id)


app = FunctionApp(
    "ingest",
    [
        Route(
            "POST",
            "/api/imports",
            upload,
            "Upload a bank statement (multipart: file, account_id?, format?, mapping?, "
            "preset?, currency?); it is staged in the background (202)",
            form=UploadForm,
            response=ImportAcceptedOut,
            status=202,
            errors=(400, 413, 415, 422),
            idempotency=Idempotency.SERVICE,
        ),
        Route(
            "GET",
            "/api/imports",
            list_imports,
            "Your imports, newest first",
            query=i.ListImports,
            response=ListOf[ImportOut],
            # The imports scope: every write to the import store (uploads, the workers'
            # states, progress ticks and staged rows, reviews, commits) bumps it
            # (service/cache_scopes.py); the ledger's answers stay cached meanwhile.
            cached=True,
            cache_scope="imports",
        ),
        Route(
            "GET",
            "/api/imports/<import_id>",
            get_import,
            "One import: status, counts, progress, reason when failed",
            response=ImportOut,
            errors=(404,),
            cached=True,
            cache_scope="imports",
        ),
        Route(
            "GET",
            "/api/imports/<import_id>/rows",
            list_rows,
            "The import's staged rows in file order (filter by classification)",
            query=i.ListImportRows,
            response=ListOf[ImportRowOut],
            errors=(404,),
            cached=True,
            cache_scope="imports",
        ),
        Route(
            "PATCH",
            "/api/imports/<import_id>/rows/<row_id>",
            update_row,
            "Include or exclude a row; resolve a conflict (keep_existing | import_anyway)",
            body=i.UpdateImportRow,
            response=ImportRowOut,
            errors=(404, 409),
        ),
        Route(
            "POST",
            "/api/imports/<import_id>/commit",
            commit,
            "Create the included rows as transactions (200 when done; 202 when large: it "
            f"continues in the background). Idempotent. {REFUSAL}: checked before anything "
            "is written, the import stays ready",
            response=ImportOut,
            statuses=(202,),
            idempotency=Idempotency.CLAIM,
            errors=(404, 409, 422),
        ),
        Route(
            "POST",
            "/api/imports/<import_id>/revert",
            revert,
            "Remove exactly this import's transactions, restoring balances (200, or 202 when "
            f"large). Idempotent. {REFUSAL}: checked before anything is written",
            response=ImportOut,
            statuses=(202,),
            idempotency=Idempotency.CLAIM,
            errors=(404, 409, 422),
        ),
        task(
            "/api/ingest/tasks/process",
            task_process,
            "Cloud Tasks: parse, classify and stage an uploaded statement",
            body=i.ImportTask,
            response=ImportOut,
            gone=True,
        ),
        task(
            "/api/ingest/tasks/commit",
            task_commit,
            "Cloud Tasks: commit a large import",
            body=i.ImportTask,
            response=ImportOut,
            gone=True,
        ),
        task(
            "/api/ingest/tasks/revert",
            task_revert,
            "Cloud Tasks: revert a large import",
            body=i.ImportTask,
            response=ImportOut,
            gone=True,
        ),
    ],
    bootstrap.build(),
    service="imports",
)


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    return app(request)
