"""Writes of files and uploads. A blob is stored whole before its row is written, and removed
again when the row cannot be: no row without contents, no contents left without a row."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from files.batch_input import BatchInputSummary, batch_input_validate
from files.models import File, FilePurpose, Upload, UploadPart, UploadStatus
from files.selectors import files_expired, upload_parts_ordered, uploads_expired
from files.storage import ChunksReader, blob_chunks, blob_delete, blob_save
from gateway.context import Caller
from gateway.errors import InvalidRequestError, RequestTooLargeError

logger = logging.getLogger(__name__)

# OpenAI's bounds on `expires_after.seconds`, and its default: batch files expire in 30 days.
EXPIRES_AFTER_MIN = 3600
EXPIRES_AFTER_MAX = 30 * 24 * 3600
EXPIRES_AFTER_DEFAULT: dict[str, int] = {FilePurpose.BATCH: 30 * 24 * 3600}
UPLOAD_LIFETIME = timedelta(hours=1)  # an upload not completed within an hour expires


def file_max_bytes(*, purpose: str) -> int:
    """The largest file of a purpose (settings.OGEM_FILES_MAX_BYTES; docs/files.md)."""
    return int(settings.OGEM_FILES_MAX_BYTES.get(purpose, settings.OGEM_FILES_MAX_BYTES_DEFAULT))


def expires_after_check(*, anchor: object, seconds: object) -> int:
    """`expires_after[anchor]` and `expires_after[seconds]` as OpenAI bounds them."""
    if anchor != "created_at":
        raise InvalidRequestError(
            "`expires_after.anchor` must be `created_at`.", param="expires_after.anchor"
        )
    if isinstance(seconds, str) and seconds.strip().isdigit():
        seconds = int(seconds)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not EXPIRES_AFTER_MIN <= seconds <= EXPIRES_AFTER_MAX
    ):
        raise InvalidRequestError(
            f"`expires_after.seconds` must be an integer from {EXPIRES_AFTER_MIN} to "
            f"{EXPIRES_AFTER_MAX}.",
            param="expires_after.seconds",
        )
    return seconds


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _blob_name(*, caller: Caller, object_id: str) -> str:
    # Grouped by organization so that an operator can find (or move) a tenant's blobs.
    return f"{caller.organization_id or 'none'}/{object_id}"


class ChunkSource(Protocol):
    """Contents that can be read from their start again: Django's uploaded files (`chunks()`
    seeks back first), or the joined parts of an upload."""

    def chunks(self) -> Iterator[bytes]: ...


class _Counter:
    """Counts the bytes that pass and refuses the chunk that crosses `limit`."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise RequestTooLargeError(f"The file is larger than {self.limit} bytes.")


def file_create(
    *,
    caller: Caller,
    chunks: Iterable[bytes],
    filename: str,
    purpose: str,
    expires_after: int | None = None,
    max_bytes: int | None = None,
    batch_summary: BatchInputSummary | None = None,
) -> File:
    """Store a stream of byte chunks as a new file of `caller`'s tenant (Ogem's own outputs,
    e.g. `batch_output`, come this way). `expires_after`: seconds from now; None takes the
    purpose's default (docs/files.md). Over `max_bytes`, 413 and nothing is kept."""
    file_id = _new_id("file-")
    counter = _Counter(max_bytes)
    name = _blob_name(caller=caller, object_id=file_id)
    stored_as = None
    try:
        stored_as = blob_save(name=name, content=ChunksReader(chunks, observe=counter))
        created_at = timezone.now()
        seconds = expires_after if expires_after is not None else EXPIRES_AFTER_DEFAULT.get(purpose)
        with transaction.atomic():
            return File.objects.create(
                file_id=file_id,
                organization_id=caller.organization_id,
                team_id=caller.team_id,
                key_id=caller.key_id,
                filename=filename[:512],
                purpose=purpose,
                bytes=counter.size,
                storage_name=stored_as,
                created_at=created_at,
                expires_at=created_at + timedelta(seconds=seconds) if seconds else None,
                batch_summary=batch_summary.as_json() if batch_summary else None,
            )
    except BaseException:
        # A stream cut short or a row that could not be written leaves no blob behind: a local
        # file written halfway stays under its name (ids are unique: nobody else's); a failed
        # S3 upload is aborted by boto3 itself.
        _blob_discard(name=stored_as or name)
        raise


def _blob_discard(*, name: str) -> None:
    """Clean-up after a failure: a storage that fails again here must not hide the first
    error (the blob is then an orphan, logged)."""
    try:
        blob_delete(name=name)
    except Exception:
        logger.exception("could not delete the blob %s after a failed write", name)


def file_upload(
    *,
    caller: Caller,
    content: ChunkSource,
    size: int,
    filename: str,
    purpose: str,
    expires_after: int | None = None,
) -> File:
    """A client's file (/v1/files): bounded by its purpose's size, a `batch` file validated line
    by line first (files/batch_input.py), then stored."""
    limit = file_max_bytes(purpose=purpose)
    if size > limit:
        raise RequestTooLargeError(f"A `{purpose}` file can be at most {limit} bytes.")
    summary = None
    if purpose == FilePurpose.BATCH:
        summary = batch_input_validate(
            chunks=_replayable(content),
            caller=caller,
            mixed_models_allowed=settings.OGEM_FILES_BATCH_MIXED_MODELS,
        )
    return file_create(
        caller=caller,
        chunks=_replayable(content),
        filename=filename,
        purpose=purpose,
        expires_after=expires_after,
        max_bytes=limit,
        batch_summary=summary,
    )


def _replayable(content: ChunkSource) -> Iterator[bytes]:
    return iter(content.chunks())


def file_delete(*, file: File) -> None:
    """The row now, its blob once the deletion is committed."""
    name = file.storage_name
    with transaction.atomic():
        file.delete()
        transaction.on_commit(lambda: blob_delete(name=name))


def files_expired_purge(*, now: datetime | None = None) -> int:
    """Remove expired files and expired or abandoned uploads' parts; idempotent (a blob already
    gone is no error, a row already deleted is not found again). The count of files removed."""
    removed = 0
    for file in files_expired(now=now).iterator():
        blob_delete(name=file.storage_name)
        File.objects.filter(pk=file.pk).delete()
        removed += 1
    for upload in uploads_expired(now=now):
        if upload.status == UploadStatus.PENDING:
            Upload.objects.filter(pk=upload.pk, status=UploadStatus.PENDING).update(
                status=UploadStatus.EXPIRED
            )
        _parts_drop(upload=upload)
    return removed


def _parts_drop(*, upload: Upload) -> None:
    for part in list(upload.parts.all()):
        blob_delete(name=part.storage_name)
        part.delete()


# ---- Uploads in parts (/v1/uploads) -------------------------------------------------------------


def upload_create(
    *,
    caller: Caller,
    filename: str,
    purpose: str,
    size: int,
    mime_type: str,
    expires_after: int | None = None,
) -> Upload:
    limit = file_max_bytes(purpose=purpose)
    if size > limit:
        raise InvalidRequestError(
            f"A `{purpose}` file can be at most {limit} bytes; this upload announces {size}.",
            param="bytes",
            code="file_too_large",
        )
    now = timezone.now()
    return Upload.objects.create(
        upload_id=_new_id("upload_"),
        organization_id=caller.organization_id,
        team_id=caller.team_id,
        key_id=caller.key_id,
        filename=filename[:512],
        purpose=purpose,
        bytes=size,
        mime_type=mime_type[:200],
        created_at=now,
        expires_at=now + UPLOAD_LIFETIME,
        file_expires_after=expires_after,
    )


def _upload_open_check(upload: Upload) -> None:
    if upload.status == UploadStatus.PENDING and upload.expires_at <= timezone.now():
        raise InvalidRequestError(
            f"Upload {upload.upload_id} has expired.", param="upload_id", code="upload_expired"
        )
    if upload.status != UploadStatus.PENDING:
        raise InvalidRequestError(
            f"Upload {upload.upload_id} is {upload.status}: it takes no more changes.",
            param="upload_id",
            code="upload_not_pending",
        )


def upload_part_add(*, caller: Caller, upload: Upload, content: ChunkSource) -> UploadPart:
    """Store one part (at most OGEM_UPLOAD_PART_MAX_BYTES) of a pending upload."""
    _upload_open_check(upload)
    part_id = _new_id("part_")
    counter = _Counter(settings.OGEM_UPLOAD_PART_MAX_BYTES)
    name = _blob_name(caller=caller, object_id=f"{upload.upload_id}/{part_id}")
    try:
        stored_as = blob_save(
            name=name, content=ChunksReader(_replayable(content), observe=counter)
        )
    except BaseException:
        _blob_discard(name=name)  # a part written halfway (see file_create)
        raise
    try:
        with transaction.atomic():
            # Locked, so a part added while the upload completes or is cancelled is refused.
            locked = Upload.objects.select_for_update().get(pk=upload.pk)
            _upload_open_check(locked)
            return UploadPart.objects.create(
                part_id=part_id,
                upload=locked,
                bytes=counter.size,
                storage_name=stored_as,
                created_at=timezone.now(),
            )
    except BaseException:
        _blob_discard(name=stored_as)
        raise


def upload_complete(
    *, caller: Caller, upload: Upload, part_ids: list[str], md5: str | None = None
) -> Upload:
    """Join the named parts, in that order, into a File (a `batch` one validated as on
    /v1/files); the bytes must add up to what the upload announced, and to `md5` when given."""
    _upload_open_check(upload)
    if len(set(part_ids)) != len(part_ids):
        raise InvalidRequestError("`part_ids` names a part twice.", param="part_ids")
    parts = upload_parts_ordered(upload=upload, part_ids=part_ids)
    total = sum(part.bytes for part in parts)
    if total != upload.bytes:
        raise InvalidRequestError(
            f"The parts hold {total} bytes; the upload announced {upload.bytes}.",
            param="part_ids",
            code="upload_size_mismatch",
        )

    def joined() -> Iterator[bytes]:
        for part in parts:
            yield from blob_chunks(name=part.storage_name)

    if md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in joined():
            digest.update(chunk)
        if digest.hexdigest() != md5.strip().lower():
            raise InvalidRequestError(
                "The md5 of the parts does not match `md5`.", param="md5", code="md5_mismatch"
            )
    file = file_upload(
        caller=caller,
        content=_Rereadable(joined),
        size=total,
        filename=upload.filename,
        purpose=upload.purpose,
        expires_after=upload.file_expires_after,
    )
    try:
        with transaction.atomic():
            locked = Upload.objects.select_for_update().get(pk=upload.pk)
            _upload_open_check(locked)
            locked.status = UploadStatus.COMPLETED
            locked.file = file
            locked.save(update_fields=["status", "file"])
    except BaseException:
        file_delete(file=file)
        raise
    _parts_drop(upload=locked)
    return locked


class _Rereadable:
    """Chunks that can be read from the start more than once (a validation pass, then a store)."""

    def __init__(self, make: Callable[[], Iterator[bytes]]) -> None:
        self._make = make

    def chunks(self) -> Iterator[bytes]:
        return self._make()


def upload_cancel(*, upload: Upload) -> Upload:
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        _upload_open_check(locked)
        locked.status = UploadStatus.CANCELLED
        locked.save(update_fields=["status"])
    _parts_drop(upload=locked)
    return locked
