"""/v1/uploads through the official SDK: create, parts, complete (in part_ids' order, md5
optional), cancel; the File it makes; bad input and other tenants."""

from __future__ import annotations

import hashlib
import io

import httpx
import openai
import pytest

from files.models import File, UploadPart
from tests.factories import OrganizationFactory, TeamFactory
from tests.files.conftest import blobs
from tests.schemas import schema_validate

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = b"".join(f"line {n}\n".encode() for n in range(5000))  # 48,890 bytes


def test_upload_file_chunked_makes_a_file(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    upload = client.uploads.upload_file_chunked(
        file=CONTENT,
        filename="big.txt",
        bytes=len(CONTENT),
        mime_type="text/plain",
        purpose="assistants",
        part_size=10_000,
        md5=hashlib.md5(CONTENT).hexdigest(),
    )
    assert upload.id.startswith("upload_")
    assert (upload.status, upload.bytes, upload.filename) == ("completed", len(CONTENT), "big.txt")
    assert upload.file is not None
    assert (upload.file.bytes, upload.file.purpose) == (len(CONTENT), "assistants")
    assert client.files.content(upload.file.id).read() == CONTENT
    assert client.files.retrieve(upload.file.id).filename == "big.txt"
    # The parts are gone once joined: one blob, the file's.
    assert UploadPart.objects.count() == 0
    assert len(blobs(files_dir)) == 1


def test_parts_are_joined_in_part_ids_order(key_sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    created = client.uploads.with_raw_response.create(
        filename="a.txt", bytes=6, mime_type="text/plain", purpose="user_data"
    )
    schema_validate("Upload", created.http_response.json())
    upload = created.parse()
    assert upload.expires_at == upload.created_at + 3600
    first = client.uploads.parts.with_raw_response.create(upload.id, data=b"abc")
    schema_validate("UploadPart", first.http_response.json())
    second = client.uploads.parts.create(upload.id, data=b"def")
    done = client.uploads.complete(upload.id, part_ids=[second.id, first.parse().id])
    assert done.file is not None
    assert client.files.content(done.file.id).read() == b"defabc"
    # A completed upload takes no more parts.
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.parts.create(upload.id, data=b"x")
    assert refused.value.body["code"] == "upload_not_pending"  # type: ignore[index]


def test_bad_completions_leave_no_file(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    upload = client.uploads.create(
        filename="a.txt", bytes=6, mime_type="text/plain", purpose="user_data"
    )
    part = client.uploads.parts.create(upload.id, data=b"abcdef")
    for options, code in (
        ({"part_ids": [part.id], "md5": "0" * 32}, "md5_mismatch"),
        ({"part_ids": [part.id, part.id]}, None),
        ({"part_ids": []}, "upload_size_mismatch"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.uploads.complete(upload.id, **options)
        assert refused.value.body["code"] == code  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.uploads.complete(upload.id, part_ids=["part_nope"])
    assert File.objects.count() == 0
    assert len(blobs(files_dir)) == 1  # the part, still there to complete with
    assert client.uploads.complete(upload.id, part_ids=[part.id]).status == "completed"


def test_cancel_drops_the_parts(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    upload = client.uploads.create(
        filename="a.txt", bytes=3, mime_type="text/plain", purpose="user_data"
    )
    part = client.uploads.parts.create(upload.id, data=b"abc")
    cancelled = client.uploads.cancel(upload.id)
    assert (cancelled.status, cancelled.file) == ("cancelled", None)
    assert blobs(files_dir) == []
    with pytest.raises(openai.BadRequestError):
        client.uploads.complete(upload.id, part_ids=[part.id])


def test_a_batch_upload_is_validated_on_completion(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    content = b'{"custom_id": "a", "method": "POST", "url": "/v1/nope", "body": {}}\n'
    upload = client.uploads.create(
        filename="in.jsonl", bytes=len(content), mime_type="text/jsonl", purpose="batch"
    )
    part = client.uploads.parts.create(upload.id, data=content)
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.complete(upload.id, part_ids=[part.id])
    assert refused.value.body["message"].startswith("Line 1 of the batch file is invalid")  # type: ignore[index]
    assert File.objects.count() == 0


def test_bounds(key_sdk, settings, live_ogem, files_dir) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_FILES_MAX_BYTES = {**settings.OGEM_FILES_MAX_BYTES, "batch": 100}
    settings.OGEM_UPLOAD_PART_MAX_BYTES = 10
    client = key_sdk()
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.create(filename="a", bytes=101, mime_type="text/jsonl", purpose="batch")
    assert refused.value.body["code"] == "file_too_large"  # type: ignore[index]
    upload = client.uploads.create(
        filename="a", bytes=20, mime_type="text/plain", purpose="user_data"
    )
    with pytest.raises(openai.APIStatusError) as too_large:
        client.uploads.parts.create(upload.id, data=b"x" * 11)
    assert too_large.value.status_code == 413
    assert blobs(files_dir) == []  # the part written halfway is gone
    headers = {"Authorization": f"Bearer {client.api_key}"}
    for body, param in (
        ({"filename": "a", "bytes": 1, "mime_type": "text/plain"}, "purpose"),
        ({"filename": "a", "bytes": -1, "mime_type": "x", "purpose": "batch"}, "bytes"),
        (
            {
                "filename": "a",
                "bytes": 1,
                "mime_type": "x",
                "purpose": "batch",
                "expires_after": {"anchor": "now", "seconds": 3600},
            },
            "expires_after.anchor",
        ),
    ):
        answer = httpx.post(f"{live_ogem.url}/v1/uploads", headers=headers, json=body)
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == param


def test_another_organizations_key_gets_404(key_sdk) -> None:  # type: ignore[no-untyped-def]
    owner = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    other = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    upload = owner.uploads.create(
        filename="a.txt", bytes=3, mime_type="text/plain", purpose="user_data"
    )
    part = owner.uploads.parts.create(upload.id, data=b"abc")
    for attempt in (
        lambda: other.uploads.parts.create(upload.id, data=b"abc"),
        lambda: other.uploads.complete(upload.id, part_ids=[part.id]),
        lambda: other.uploads.cancel(upload.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    done = owner.uploads.complete(upload.id, part_ids=[part.id])
    assert done.file is not None
    with pytest.raises(openai.NotFoundError):
        other.files.content(done.file.id)
    assert io.BytesIO(owner.files.content(done.file.id).read()).read() == b"abc"
