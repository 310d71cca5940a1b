"""Ingest function (/api/imports): upload a bank statement, review its staged rows, commit,
revert; and the Cloud Tasks worker that stages it (/api/ingest/tasks/*, internal only)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.imports import ImportStatus
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.imports import (
    ImportAcceptedOut,
    ImportOut,
    ImportRowOut,
    idempotency_key,
    parse_upload,
)
from valorize.entrypoints.schemas import ListOf, dump
from valorize.service.requests import imports as ic


def render(record: object) -> object:
    return dump(ImportOut.of(record))  # type: ignore[arg-type]


def render_row(row: object) -> object:
    return dump(ImportRowOut.of(row))  # type: ignore[arg-type]


def upload(call: Call) -> object:
    service = bootstrap.services().imports
    with service.receive(call.user_id, idempotency_key(call.request)) as intake:
        record, replayed = service.upload(call.user_id, parse_upload(call.request, intake), intake)
    if replayed:
        # The first answer, whatever the import has become since (GET it for that).
        call.response_headers["Idempotent-Replayed"] = "true"
    return dump(ImportAcceptedOut(id=record.id, status=ImportStatus.UPLOADED))


def list_imports(call: Call) -> object:
    page = bootstrap.services().imports.list_imports(
        call.user_id, call.query.limit, call.query.cursor
    )
    return dump(
        ListOf[ImportOut](data=[ImportOut.of(r) for r in page.items], next_cursor=page.next_cursor)
    )


def get_import(call: Call) -> object:
    return bootstrap.services().imports.get(call.user_id, call.params["import_id"])


def list_rows(call: Call) -> object:
    q: ic.ListImportRows = call.query
    page = bootstrap.services().imports.rows(
        call.user_id, call.params["import_id"], q.classification, q.limit, q.cursor
    )
    return dump(
        ListOf[ImportRowOut](
            data=[ImportRowOut.of(r) for r in page.items], next_cursor=page.next_cursor
        )
    )


def update_row(call: Call) -> object:
    return bootstrap.services().imports.update_row(
        call.user_id, call.params["import_id"], call.params["row_id"], call.body
    )


def commit(call: Call) -> object:
    record, queued = bootstrap.services().imports.commit(call.user_id, call.params["import_id"])
    call.status = 202 if queued else 200
    return record


def revert(call: Call) -> object:
    record, queued = bootstrap.services().imports.revert(call.user_id, call.params["import_id"])
    call.status = 202 if queued else 200
    return record


def _last_attempt(call: Call) -> bool:
    # Cloud Tasks counts retries from 0; on the last one an unexpected error marks the import
    # failed instead of leaving it "processing" forever.
    retries = int(call.request.headers.get("X-CloudTasks-TaskRetryCount", "0") or 0)
    return retries + 1 >= bootstrap.services().settings.import_max_attempts


def _done(record: Any) -> object:
    return {"status": "gone"} if record is None else render(record)


def task_process(call: Call) -> object:
    body: ic.ImportTask = call.body
    return _done(
        bootstrap.services().imports.process(
            body.user_id, body.import_id, last_attempt=_last_attempt(call)
        )
    )


def task_commit(call: Call) -> object:
    body: ic.ImportTask = call.body
    service = bootstrap.services().imports
    if service.repo.get_import(body.user_id, body.import_id) is None:
        return {"status": "gone"}
    return render(service.run_commit(body.user_id, body.import_id))


def task_revert(call: Call) -> object:
    body: ic.ImportTask = call.body
    service = bootstrap.services().imports
    if service.repo.get_import(body.user_id, body.import_id) is None:
        return {"status": "gone"}
    return render(service.run_revert(body.user_id, body.import_id))


_MAPPING_HELP = (
    "CSV only, JSON: {date, description (one column or a list), amount | debit+credit, "
    "fitid?, date_format?, decimal_separator?, thousands_separator?, sign?: signed | "
    "debit_positive, skip_rows?, has_header?, delimiter?, encoding?, stop_at?}; columns by "
    "header name or 0-based position"
)


class IngestApp(FunctionApp):
    def openapi(self) -> dict[str, Any]:
        document = super().openapi()
        post = document["paths"]["/api/imports"]["post"]
        post["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "The statement: OFX (1.x SGML or 2.x XML) or "
                                "CSV, at most 10 MiB",
                            },
                            "account_id": {
                                "type": "string",
                                "description": "One of your accounts; else detected from the "
                                "statement (bank id + account number) or created",
                            },
                            "format": {"type": "string", "enum": ["ofx", "csv"]},
                            "mapping": {"type": "string", "description": _MAPPING_HELP},
                            "preset": {
                                "type": "string",
                                "description": "CSV layout of a bank: bradesco, inter, "
                                "nubank_account, nubank_card, generic (else recognised from the "
                                "header row)",
                            },
                            "currency": {
                                "type": "string",
                                "description": "CSV amounts' currency (default: the chosen "
                                "account's, else your preferred currency)",
                            },
                        },
                    }
                }
            },
        }
        post["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "The same key with the same file returns the first upload; "
                "another file with that key is a 422",
            }
        )
        return document


app = IngestApp(
    "ingest",
    [
        Route(
            "POST",
            "/api/imports",
            upload,
            "Upload a bank statement (multipart: file, account_id?, format?, mapping?, "
            "preset?, currency?); it is staged in the background (202)",
            response=ImportAcceptedOut,
            status=202,
            errors=(400, 413, 415, 422),
        ),
        Route(
            "GET",
            "/api/imports",
            list_imports,
            "Your imports, newest first",
            query=ic.ListImports,
            response=ListOf[ImportOut],
        ),
        Route(
            "GET",
            "/api/imports/<import_id>",
            get_import,
            "One import: status, counts, progress, reason when failed",
            response=ImportOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "GET",
            "/api/imports/<import_id>/rows",
            list_rows,
            "The import's staged rows in file order (filter by classification)",
            query=ic.ListImportRows,
            response=ListOf[ImportRowOut],
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/imports/<import_id>/rows/<row_id>",
            update_row,
            "Include or exclude a row; resolve a conflict (keep_existing | import_anyway)",
            body=ic.UpdateImportRow,
            response=ImportRowOut,
            render=render_row,
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
            render=render,
            idempotency="claim",
            errors=(404, 409, 422),
        ),
        Route(
            "POST",
            "/api/imports/<import_id>/revert",
            revert,
            "Remove exactly this import's transactions, restoring balances (200, or 202 when "
            f"large). Idempotent. {REFUSAL}: checked before anything is written",
            response=ImportOut,
            render=render,
            idempotency="claim",
            errors=(404, 409, 422),
        ),
        Route(
            "POST",
            "/api/ingest/tasks/process",
            task_process,
            "Cloud Tasks: parse, classify and stage an uploaded statement",
            body=ic.ImportTask,
            response=ImportOut,
            internal=True,
            auth=False,
            errors=(401,),
        ),
        Route(
            "POST",
            "/api/ingest/tasks/commit",
            task_commit,
            "Cloud Tasks: commit a large import",
            body=ic.ImportTask,
            response=ImportOut,
            internal=True,
            auth=False,
            errors=(401,),
        ),
        Route(
            "POST",
            "/api/ingest/tasks/revert",
            task_revert,
            "Cloud Tasks: revert a large import",
            body=ic.ImportTask,
            response=ImportOut,
            internal=True,
            auth=False,
            errors=(401,),
        ),
    ],
)


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    return app(request)
