"""/v1/files through the live server and the official openai SDK: upload, list with purpose
filter and cursor pages, retrieve, content, delete; OpenAI's shapes; tenants isolated."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.factories import OrganizationFactory, TeamFactory
from tests.files.conftest import blobs
from tests.schemas import schema_validate

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client: openai.OpenAI, content: bytes, name: str = "notes.txt", **options):  # type: ignore[no-untyped-def]
    return client.files.create(
        file=(name, io.BytesIO(content)), purpose=options.pop("purpose", "user_data"), **options
    )


def test_upload_retrieve_content_delete_through_the_sdk(key_sdk, files_dir: Path) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    before = int(time.time())
    created = _upload(client, b"hello\nworld\n")
    assert created.id.startswith("file-")
    assert (created.object, created.bytes, created.filename, created.purpose) == (
        "file",
        12,
        "notes.txt",
        "user_data",
    )
    assert created.status == "processed"
    assert created.expires_at is None
    assert before <= created.created_at <= int(time.time())
    raw = client.files.with_raw_response.retrieve(created.id)
    schema_validate("OpenAIFile", raw.http_response.json())
    assert raw.parse() == created
    assert client.files.content(created.id).read() == b"hello\nworld\n"
    assert len(blobs(files_dir)) == 1

    deleted = client.files.with_raw_response.delete(created.id)
    schema_validate("DeleteFileResponse", deleted.http_response.json())
    assert deleted.parse().deleted is True
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(created.id)
    assert missing.value.body["code"] == "not_found"  # type: ignore[index]
    assert blobs(files_dir) == []


def test_expires_after_sets_expires_at(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    created = _upload(client, b"x", expires_after={"anchor": "created_at", "seconds": 3600})
    assert created.expires_at == created.created_at + 3600
    # OpenAI's default: a batch file expires in 30 days.
    line = (
        b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}}\n'
    )
    batch = _upload(client, line, name="in.jsonl", purpose="batch")
    assert batch.expires_at == batch.created_at + 30 * 24 * 3600
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, b"x", expires_after={"anchor": "created_at", "seconds": 60})
    assert refused.value.body["param"] == "expires_after.seconds"  # type: ignore[index]


def test_list_pages_with_after_limit_order_and_purpose(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    ids = [_upload(client, f"{n}".encode()).id for n in range(5)]
    vision = _upload(client, b"img", name="a.png", purpose="vision").id

    raw = client.files.with_raw_response.list()
    schema_validate("ListFilesResponse", raw.http_response.json())
    listed = raw.parse()
    # OpenAI's default order is newest first.
    assert [f.id for f in listed.data] == [vision, *reversed(ids)]

    page = client.files.list(purpose="user_data", order="asc", limit=2)
    assert [f.id for f in page.data] == ids[:2]
    assert page.has_more is True
    # The SDK's auto-pagination follows `after` to the end.
    assert [f.id for f in client.files.list(purpose="user_data", order="asc", limit=2)] == ids
    assert [f.id for f in client.files.list(purpose="vision")] == [vision]
    body = client.files.with_raw_response.list(
        purpose="user_data", order="desc", limit=2, after=ids[2]
    ).http_response.json()
    assert [f["id"] for f in body["data"]] == [ids[1], ids[0]]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[1], ids[0], False)


def test_bad_list_parameters_are_400(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    for query, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "file-nope"}, "after"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.files.list(**query)  # type: ignore[arg-type]
        assert refused.value.body["param"] == param  # type: ignore[index]


def test_another_organizations_key_gets_404_on_every_operation(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    owner = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    other = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    created = _upload(owner, b"secret")
    for attempt in (
        lambda: other.files.retrieve(created.id),
        lambda: other.files.content(created.id),
        lambda: other.files.delete(created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert [f.id for f in other.files.list()] == []
    with pytest.raises(openai.BadRequestError):
        other.files.list(after=created.id)
    # Still there for its owner.
    assert owner.files.content(created.id).read() == b"secret"


def test_a_team_shares_its_files_and_the_master_key_sees_all(key_sdk, sdk, make_key) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory()
    first, second = key_sdk(team=team), key_sdk(team=team)
    other_team = key_sdk(team=TeamFactory(organization=team.organization))
    created = _upload(first, b"shared")
    assert second.files.retrieve(created.id).id == created.id
    with pytest.raises(openai.NotFoundError):
        other_team.files.retrieve(created.id)
    assert sdk.files.retrieve(created.id).id == created.id
    # A key of the organization without a team sees every team's files.
    organization_key = key_sdk(organization=team.organization)
    assert organization_key.files.retrieve(created.id).id == created.id
    # The master key's own files belong to no tenant: no tenant's key sees them.
    own = _upload(sdk, b"operator's")
    for client in (first, other_team):
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(own.id)
    assert {f.id for f in sdk.files.list()} >= {created.id, own.id}


def test_bad_uploads_are_openai_shaped_400s(key_sdk, live_ogem, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, b"x", purpose="weights")
    assert refused.value.body["param"] == "purpose"  # type: ignore[index]
    headers = {"Authorization": f"Bearer {client.api_key}"}
    no_file = httpx.post(
        f"{live_ogem.url}/v1/files",
        headers=headers,
        data={"purpose": "user_data"},
        files={"x": b""},
    )
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    not_multipart = httpx.post(f"{live_ogem.url}/v1/files", headers=headers, json={"a": 1})
    assert not_multipart.status_code == 400
    assert not_multipart.json()["error"]["code"] == "invalid_content_type"
    assert blobs(files_dir) == []


def test_a_file_over_its_purpose_limit_is_413_and_leaves_nothing(  # type: ignore[no-untyped-def]
    key_sdk, settings, files_dir
) -> None:
    settings.OGEM_FILES_MAX_BYTES = {**settings.OGEM_FILES_MAX_BYTES, "vision": 1000}
    client = key_sdk()
    with pytest.raises(openai.APIStatusError) as refused:
        _upload(client, b"x" * 1001, name="a.png", purpose="vision")
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "request_too_large"  # type: ignore[index]
    assert _upload(client, b"x" * 1000, name="a.png", purpose="vision").bytes == 1000
    assert len(blobs(files_dir)) == 1


def test_a_file_larger_than_the_v1_body_limit_uploads_up_to_its_own(  # type: ignore[no-untyped-def]
    key_sdk, settings, files_dir
) -> None:
    settings.OGEM_MAX_REQUEST_BYTES = 64 * 1024
    settings.OGEM_FILES_MAX_BYTES = {**settings.OGEM_FILES_MAX_BYTES, "user_data": 3 * 1024 * 1024}
    client = key_sdk()
    content = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    created = _upload(client, content, name="big.bin")
    assert created.bytes == len(content)
    assert client.files.content(created.id).read() == content
    # Past the largest purpose's bound the body is refused before it is read.
    settings.OGEM_FILES_MAX_BYTES = {p: 1024 * 1024 for p in settings.OGEM_FILES_MAX_BYTES}
    with pytest.raises(openai.APIStatusError) as refused:
        _upload(client, content, name="big.bin")
    assert refused.value.status_code == 413
    assert len(blobs(files_dir)) == 1
