"""Files expire per `expires_after`: 404 from then on, and purged (row and contents) by the
idempotent beat task; abandoned uploads expire after an hour and lose their parts."""

from __future__ import annotations

import io
from datetime import timedelta

import openai
import pytest
from django.conf import settings
from django.utils import timezone

from files.models import File, Upload, UploadPart
from files.tasks import files_expired_purge
from tests.files.conftest import blobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_schedules_the_purge() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["files-expired-purge"]
    assert entry["task"] == files_expired_purge.name


def test_an_expired_file_is_404_then_purged_once(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    expiring = client.files.create(
        file=("a.txt", io.BytesIO(b"old")),
        purpose="user_data",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    kept = client.files.create(file=("b.txt", io.BytesIO(b"new")), purpose="user_data")
    assert len(blobs(files_dir)) == 2
    File.objects.filter(file_id=expiring.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    for attempt in (
        lambda: client.files.retrieve(expiring.id),
        lambda: client.files.content(expiring.id),
        lambda: client.files.delete(expiring.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert [f.id for f in client.files.list()] == [kept.id]

    assert files_expired_purge.delay().get() == 1
    assert list(File.objects.values_list("file_id", flat=True)) == [kept.id]
    assert len(blobs(files_dir)) == 1
    assert files_expired_purge.delay().get() == 0  # idempotent
    assert client.files.content(kept.id).read() == b"new"


def test_an_abandoned_upload_expires_and_loses_its_parts(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    upload = client.uploads.create(
        filename="a.txt", bytes=6, mime_type="text/plain", purpose="user_data"
    )
    part = client.uploads.parts.create(upload.id, data=b"abc")
    Upload.objects.filter(upload_id=upload.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.parts.create(upload.id, data=b"def")
    assert refused.value.body["code"] == "upload_expired"  # type: ignore[index]
    files_expired_purge.delay().get()
    assert Upload.objects.get(upload_id=upload.id).status == "expired"
    assert UploadPart.objects.count() == 0
    assert blobs(files_dir) == []
    with pytest.raises(openai.BadRequestError) as refused:
        client.uploads.complete(upload.id, part_ids=[part.id])
    assert refused.value.body["code"] == "upload_not_pending"  # type: ignore[index]
    files_expired_purge.delay().get()  # nothing left to do, no error


def test_without_redis_uploads_run_the_purge(key_sdk, settings, monkeypatch, files_dir) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""  # the embedded default: no beat
    monkeypatch.setattr("files.api._purged_at", None)
    client = key_sdk()
    old = client.files.create(file=("a.txt", io.BytesIO(b"old")), purpose="user_data")
    File.objects.filter(file_id=old.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr("files.api._purged_at", None)
    new = client.files.create(file=("b.txt", io.BytesIO(b"new")), purpose="user_data")
    assert list(File.objects.values_list("file_id", flat=True)) == [new.id]
    assert len(blobs(files_dir)) == 1
