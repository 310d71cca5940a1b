"""Uploaded statements in Cloud Storage (the StatementFiles port of service/imports.py).

Objects are `imports/{uid}/{import_id}.{ext}` in the statements bucket (STATEMENTS_BUCKET in
production, VALORIZE_BUCKET locally, where STORAGE_EMULATOR_HOST points the client at
gcp-storage-emulator). They are read back as a stream of 1 MiB ranged reads, so the worker
never holds a whole file. The bucket's lifecycle rule deletes them after 90 days.

google-cloud-storage is imported on first use only (cold starts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import TYPE_CHECKING, BinaryIO

from valorize.service.imports import StatementFileMissing

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined]

READ_CHUNK = 1024 * 1024
DEFAULT_BUCKET = "valorize-statements"


def bucket_name() -> str:
    return (
        os.environ.get("VALORIZE_BUCKET") or os.environ.get("STATEMENTS_BUCKET") or DEFAULT_BUCKET
    )


class GcsStatementFiles:
    def __init__(self, project: str, bucket: str | None = None) -> None:
        self.project = project
        self.bucket_name = bucket or bucket_name()

    @cached_property
    def bucket(self) -> storage.Bucket:
        from google.cloud import storage  # type: ignore[attr-defined]

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project=self.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            )
        else:
            client = storage.Client(project=self.project)
        return client.bucket(self.bucket_name)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        # Names are unique per import; only a retried upload with the same Idempotency-Key
        # (whose first try died before creating the import) writes the same name again.
        self.bucket.blob(name).upload_from_string(data, content_type=content_type)

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(name)
        try:
            blob.reload()
        except gexc.NotFound:
            raise StatementFileMissing(name) from None
        reader = blob.open("rb", chunk_size=READ_CHUNK)
        try:
            yield reader
        finally:
            reader.close()

    def delete(self, name: str) -> None:
        from google.api_core import exceptions as gexc

        with suppress(gexc.NotFound):
            self.bucket.blob(name).delete()
