"""Uploaded statements in Cloud Storage (the StatementFiles port of service/ports/imports.py).

Objects are `imports/{uid}/{id}.{ext}` in the statements bucket (STATEMENTS_BUCKET in
production, VALORIZE_BUCKET locally, where STORAGE_EMULATOR_HOST points the client at
gcp-storage-emulator: config.Settings; bootstrap builds the client). They are written as a
resumable upload in 1 MiB chunks while the request body arrives, and read back as a stream of
1 MiB ranged reads, so neither the upload nor the worker ever holds a whole file. The
bucket's lifecycle rule deletes them after 90 days.

google-cloud-storage is imported on first use only (cold starts)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

from valorize.service.ports.imports import StatementFileMissing

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined]

log = logging.getLogger(__name__)
READ_CHUNK = 1024 * 1024
# A multiple of 256 KiB, as resumable uploads require: what an upload holds in memory.
WRITE_CHUNK = 1024 * 1024


class GcsStatementFiles:
    def __init__(self, bucket: Callable[[], storage.Bucket]) -> None:
        """`bucket`: the statements bucket, its client built (by bootstrap) on first use."""
        self._bucket = bucket

    @cached_property
    def bucket(self) -> storage.Bucket:
        return self._bucket()

    def create(self, name: str, content_type: str) -> GcsStatementWriter:
        # Names are unique per upload attempt, so a write never replaces another's file.
        return GcsStatementWriter(self.bucket.blob(name), content_type)

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


class GcsStatementWriter:
    """One object as a resumable upload: at most WRITE_CHUNK bytes in memory; the object
    exists only once `close` has sent the last chunk."""

    def __init__(self, blob: storage.Blob, content_type: str) -> None:
        from google.cloud.storage.fileio import BlobWriter

        self._writer: Any = BlobWriter(blob, chunk_size=WRITE_CHUNK, content_type=content_type)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        """Cancel the upload: no object is created. Never raises."""
        try:
            self._writer.terminate()
        except Exception:  # the session expires by itself (GCS: one week)
            log.warning("cancelling a statement upload failed", exc_info=True)
        finally:
            # terminate() closes the buffer only after cancelling the session; closed here
            # whatever happened, or the writer's finaliser (IOBase.__del__ -> close()) would
            # finish the upload with the part it has.
            self._writer._buffer.close()
