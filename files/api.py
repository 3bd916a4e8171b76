"""/v1/files and /v1/uploads (OpenAI's Files and Uploads APIs), mounted on the gateway's Ninja
API by the URL configuration (`files_mount`).

The views are thin: they authenticate, read the request, and run the selectors and services in a
worker thread (database, storage and multipart parsing are blocking). Bodies larger than
OGEM_MAX_REQUEST_BYTES reach these views (gateway/asgi.py allows the files' own bounds); they are
spooled to disk by Django, never held whole in memory, and stored chunk by chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI

from files.models import UPLOAD_PURPOSES, File, Upload, UploadPart
from files.selectors import file_get, file_get_visible, file_open, file_page, upload_get_visible
from files.services import (
    expires_after_check,
    file_delete,
    file_upload,
    upload_cancel,
    upload_complete,
    upload_create,
    upload_part_add,
)
from files.storage import CHUNK, storage_failed
from files.tasks import files_expired_purge
from gateway.blocking import blocking_run
from gateway.body import body_read_json
from gateway.errors import GatewayError, InvalidRequestError, RequestTooLargeError
from gateway.views.common import (
    answer_headers,
    list_object,
    object_answer,
    object_caller,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

LIST_LIMIT_DEFAULT = 10_000  # OpenAI's default and maximum page
LIST_LIMIT_MAX = 10_000
PURGE_INTERVAL = 300.0  # seconds, as beat's schedule
_purged_at: float | None = None


def _storage_error(exc: Exception) -> None:
    if storage_failed(exc):
        logger.warning("file storage failed on /v1: %r", exc)
        raise GatewayError(
            "The file storage is unavailable; retry shortly.",
            status=503,
            code="storage_unavailable",
            headers={"Retry-After": "1"},
        ) from exc


async def _thread(function: Callable[..., T], **kwargs: Any) -> T:
    """Blocking work (ORM, storage, multipart parsing); a storage failure answers 503."""
    return await blocking_run(function, on_error=_storage_error, **kwargs)


def file_object(file: File) -> dict[str, Any]:
    """OpenAI's File object."""
    shown: dict[str, Any] = {
        "id": file.file_id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at.timestamp()),
        "filename": file.filename,
        "purpose": file.purpose,
        # Ogem checks a file while it is uploaded: one that is listed is processed.
        "status": "processed",
    }
    # OpenAI's schema has no null here: a file that never expires has no `expires_at`.
    if file.expires_at is not None:
        shown["expires_at"] = int(file.expires_at.timestamp())
    return shown


def upload_object(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.upload_id,
        "object": "upload",
        "bytes": upload.bytes,
        "created_at": int(upload.created_at.timestamp()),
        "filename": upload.filename,
        "purpose": upload.purpose,
        "status": upload.status,
        "expires_at": int(upload.expires_at.timestamp()),
        "file": file_object(upload.file) if upload.file is not None else None,
    }


def part_object(part: UploadPart) -> dict[str, Any]:
    return {
        "id": part.part_id,
        "object": "upload.part",
        "created_at": int(part.created_at.timestamp()),
        "upload_id": part.upload.upload_id,
    }


def _purpose(value: object) -> str:
    if value is None or value == "":
        raise InvalidRequestError("Missing required parameter: `purpose`.", param="purpose")
    if value not in UPLOAD_PURPOSES:
        raise InvalidRequestError(
            f"`purpose` must be one of {', '.join(UPLOAD_PURPOSES)}; got {value!r}.",
            param="purpose",
        )
    return str(value)


def _form(request: HttpRequest) -> tuple[Any, Any]:
    """The multipart form and its files; Django spools a large file to disk as it parses."""
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "This endpoint expects multipart/form-data.", code="invalid_content_type"
        )
    try:
        return request.POST, request.FILES
    except RequestDataTooBig as exc:
        raise RequestTooLargeError("The form's fields are too large.") from exc
    except MultiPartParserError as exc:
        raise InvalidRequestError("The multipart body is malformed.") from exc
    except (TooManyFieldsSent, TooManyFilesSent) as exc:
        raise InvalidRequestError(
            "The multipart body has too many fields or files.", code="too_many_fields"
        ) from exc


def _expires_after_form(form: Any) -> int | None:
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    return expires_after_check(anchor=anchor, seconds=seconds)


def _expires_after_json(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError("`expires_after` must be an object.", param="expires_after")
    return expires_after_check(anchor=value.get("anchor"), seconds=value.get("seconds"))


# ---- /v1/files ----------------------------------------------------------------------------------


async def files_create(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)

    def create() -> File:
        form, uploads = _form(request)
        purpose = _purpose(form.get("purpose"))
        expires_after = _expires_after_form(form)
        uploaded = uploads.get("file")
        if uploaded is None:
            raise InvalidRequestError("Missing required parameter: `file`.", param="file")
        try:
            created = file_upload(
                caller=caller,
                content=uploaded,
                size=uploaded.size,
                filename=uploaded.name or "file",
                purpose=purpose,
                expires_after=expires_after,
            )
        finally:
            for item in uploads.values():
                item.close()  # a spooled temporary file is removed now, not when collected
        _purge_when_due()
        return created

    return object_answer(request, file_object(await _thread(create)))


def _purge_when_due() -> None:
    """Without Redis (the embedded default) no beat runs: an upload runs the expiry purge, at
    most once a PURGE_INTERVAL in this process (eagerly: the same task beat runs)."""
    global _purged_at
    now = time.monotonic()
    if settings.REDIS_URL or (_purged_at is not None and now - _purged_at < PURGE_INTERVAL):
        return
    _purged_at = now
    files_expired_purge.delay()


def _page(request: HttpRequest) -> tuple[str | None, int, bool]:
    """`after`, `limit` (1 to 10,000, default 10,000) and `order` (`desc`, the default, or
    `asc`), as OpenAI's list of files takes them."""
    query = request.GET
    raw_limit = query.get("limit")
    limit = LIST_LIMIT_DEFAULT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
            raise InvalidRequestError(
                f"`limit` must be an integer from 1 to {LIST_LIMIT_MAX}.", param="limit"
            )
        limit = int(raw_limit)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
    return query.get("after") or None, limit, order == "desc"


async def files_list(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    after_id, limit, descending = _page(request)
    purpose = request.GET.get("purpose") or None

    def read() -> tuple[list[File], bool]:
        after = None
        if after_id is not None:
            after = file_get(caller=caller, file_id=after_id)
            if after is None:
                raise InvalidRequestError(f"No such File object: {after_id}", param="after")
        return file_page(
            caller=caller, purpose=purpose, after=after, limit=limit, descending=descending
        )

    rows, has_more = await _thread(read)
    data = [file_object(row) for row in rows]
    return object_answer(
        request,
        list_object(data, has_more),
    )


async def files_retrieve(request: HttpRequest, file_id: str) -> HttpResponse:
    caller = await object_caller(request)
    file = await _thread(file_get_visible, caller=caller, file_id=file_id)
    return object_answer(request, file_object(file))


async def files_delete(request: HttpRequest, file_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def delete() -> None:
        file_delete(file=file_get_visible(caller=caller, file_id=file_id))

    await _thread(delete)
    return object_answer(request, {"id": file_id, "object": "file", "deleted": True})


async def files_content(request: HttpRequest, file_id: str) -> StreamingHttpResponse:
    caller = await object_caller(request)
    file = await _thread(file_get_visible, caller=caller, file_id=file_id)
    blob = await _thread(file_open, file=file)

    async def content() -> AsyncIterator[bytes]:
        read = sync_to_async(blob.read, thread_sensitive=False)
        try:
            while chunk := await read(CHUNK):
                yield chunk
        finally:
            await sync_to_async(blob.close, thread_sensitive=False)()

    response = StreamingHttpResponse(content(), content_type="application/octet-stream")
    response["Content-Length"] = str(file.bytes)
    response["Content-Disposition"] = f'attachment; filename="{_quoted(file.filename)}"'
    answer_headers(request, response)
    return response


def _quoted(filename: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in filename)


# ---- /v1/uploads --------------------------------------------------------------------------------


async def uploads_create(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    body = body_read_json(request).body
    for name in ("filename", "purpose", "bytes", "mime_type"):
        if body.get(name) is None:
            raise InvalidRequestError(f"Missing required parameter: `{name}`.", param=name)
    filename, mime_type, size = body["filename"], body["mime_type"], body["bytes"]
    if not isinstance(filename, str) or not filename or "\x00" in filename:
        raise InvalidRequestError("`filename` must be a non-empty string.", param="filename")
    if not isinstance(mime_type, str) or "\x00" in mime_type:
        raise InvalidRequestError("`mime_type` must be a string.", param="mime_type")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidRequestError("`bytes` must be a non-negative integer.", param="bytes")
    purpose = _purpose(body["purpose"])
    expires_after = _expires_after_json(body.get("expires_after"))
    upload = await _thread(
        upload_create,
        caller=caller,
        filename=filename,
        purpose=purpose,
        size=size,
        mime_type=mime_type,
        expires_after=expires_after,
    )
    return object_answer(request, upload_object(upload))


async def uploads_parts_add(request: HttpRequest, upload_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def add() -> UploadPart:
        upload = upload_get_visible(caller=caller, upload_id=upload_id)
        _, uploads = _form(request)
        data = uploads.get("data")
        if data is None:
            raise InvalidRequestError("Missing required parameter: `data`.", param="data")
        try:
            return upload_part_add(caller=caller, upload=upload, content=data)
        finally:
            for item in uploads.values():
                item.close()

    return object_answer(request, part_object(await _thread(add)))


async def uploads_complete(request: HttpRequest, upload_id: str) -> HttpResponse:
    caller = await object_caller(request)
    body = body_read_json(request).body
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list) or not all(
        isinstance(p, str) and "\x00" not in p for p in part_ids
    ):
        raise InvalidRequestError("`part_ids` must be an array of part ids.", param="part_ids")
    md5 = body.get("md5")
    if md5 is not None and not isinstance(md5, str):
        raise InvalidRequestError("`md5` must be a string.", param="md5")

    def complete() -> Upload:
        upload = upload_get_visible(caller=caller, upload_id=upload_id)
        return upload_complete(caller=caller, upload=upload, part_ids=part_ids, md5=md5 or None)

    return object_answer(request, upload_object(await _thread(complete)))


async def uploads_cancel(request: HttpRequest, upload_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def cancel() -> Upload:
        return upload_cancel(upload=upload_get_visible(caller=caller, upload_id=upload_id))

    return object_answer(request, upload_object(await _thread(cancel)))


_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object"}}},
    }
}


def files_mount(api: NinjaAPI) -> None:
    """Add the routes to /v1's API (before its catch-all; ogem_site/urls.py)."""
    api.post(
        "/files",
        summary="Upload a file",
        openapi_extra=_MULTIPART_BODY,
        operation_id="files_create",
    )(files_create)
    api.get("/files", summary="List files", operation_id="files_list")(files_list)
    api.get("/files/{file_id}", summary="Retrieve a file", operation_id="files_retrieve")(
        files_retrieve
    )
    api.delete("/files/{file_id}", summary="Delete a file", operation_id="files_delete")(
        files_delete
    )
    api.get(
        "/files/{file_id}/content",
        summary="Retrieve a file's contents",
        operation_id="files_content",
    )(files_content)
    api.post(
        "/uploads",
        summary="Create an upload",
        openapi_extra=_JSON_BODY,
        operation_id="uploads_create",
    )(uploads_create)
    api.post(
        "/uploads/{upload_id}/parts",
        summary="Add a part to an upload",
        openapi_extra=_MULTIPART_BODY,
        operation_id="uploads_parts_add",
    )(uploads_parts_add)
    api.post(
        "/uploads/{upload_id}/complete",
        summary="Complete an upload",
        openapi_extra=_JSON_BODY,
        operation_id="uploads_complete",
    )(uploads_complete)
    api.post(
        "/uploads/{upload_id}/cancel",
        summary="Cancel an upload",
        operation_id="uploads_cancel",
    )(uploads_cancel)
