"""Files kept in S3 through django-storages, against moto's S3 in server mode on a private port:
the SDK's whole flow, nothing left behind by a refused upload or a deletion, and the environment
variables that select it (docs/files.md)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import openai
import pytest
from moto.server import ThreadedMotoServer

from tests.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "ogem-files-test"
REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    _client(url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def _client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _objects(url: str, prefix: str) -> list[str]:
    found = _client(url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in found.get("Contents") or ()]


@pytest.fixture
def s3_files(settings, moto_s3: str) -> str:  # type: ignore[no-untyped-def]
    """The `files` storage in the bucket, under a prefix of this test's: that prefix."""
    prefix = f"t-{uuid.uuid4().hex}"
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "location": prefix,
                "endpoint_url": moto_s3,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "file_overwrite": False,
                "default_acl": None,
            },
        },
    }
    return prefix


def test_the_sdk_flow_on_s3(key_sdk, s3_files: str, moto_s3: str) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    content = b"".join(f"{n}\n".encode() for n in range(100_000))
    created = client.files.create(file=("n.txt", io.BytesIO(content)), purpose="user_data")
    (key,) = _objects(moto_s3, s3_files)
    assert key.endswith(created.id)
    assert client.files.content(created.id).read() == content

    upload = client.uploads.upload_file_chunked(
        file=content,
        filename="chunked.txt",
        bytes=len(content),
        mime_type="text/plain",
        purpose="assistants",
        part_size=200_000,
    )
    assert upload.file is not None
    assert client.files.content(upload.file.id).read() == content
    assert len(_objects(moto_s3, s3_files)) == 2  # the parts are gone

    client.files.delete(created.id)
    client.files.delete(upload.file.id)
    assert _objects(moto_s3, s3_files) == []


def test_a_refused_batch_file_leaves_no_object(key_sdk, s3_files: str, moto_s3: str) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("in.jsonl", io.BytesIO(b"nope\n")), purpose="batch")
    assert _objects(moto_s3, s3_files) == []


def test_environment_variables_select_the_bucket(tmp_path: Path, moto_s3: str) -> None:
    prefix = f"env-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OGEM_", "DJANGO_", "AWS_"))}
    env.update(
        CREDENTIALS,
        OGEM_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="ogem_site.settings.base",
        OGEM_FILES_STORAGE="s3",
        OGEM_FILES_S3_BUCKET=BUCKET,
        OGEM_FILES_S3_PREFIX=prefix,
        OGEM_FILES_S3_REGION="us-east-1",
        OGEM_FILES_S3_ENDPOINT_URL=moto_s3,
    )
    script = (
        "import io; from files.storage import blob_save; "
        "print(blob_save(name='probe', content=io.BytesIO(b'x')))"
    )
    stored = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stored.returncode == 0, stored.stderr
    assert _objects(moto_s3, prefix) == [f"{prefix}/probe"]

    env.pop("OGEM_FILES_S3_BUCKET")
    refused = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "OGEM_FILES_S3_BUCKET is required when OGEM_FILES_STORAGE=s3" in refused.stderr


def test_a_bucket_that_is_away_is_503_within_seconds(key_sdk, settings) -> None:  # type: ignore[no-untyped-def]
    from botocore.config import Config

    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing listens
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "client_config": Config(
                    connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}
                ),
            },
        },
    }
    client = key_sdk()
    with pytest.raises(openai.InternalServerError) as failed:
        client.files.create(file=("a.txt", io.BytesIO(b"x")), purpose="user_data")
    assert failed.value.status_code == 503
    assert failed.value.body["code"] == "storage_unavailable"  # type: ignore[index]
    assert failed.value.response.headers["retry-after"] == "1"


def test_a_file_larger_than_one_s3_part_is_stored_from_a_stream(
    s3_files: str, moto_s3: str
) -> None:
    from files.selectors import file_chunks
    from files.services import file_create
    from gateway.context import Caller

    chunk = bytes(range(256)) * 4096  # 1 MiB
    file = file_create(
        caller=Caller(is_master=True),
        chunks=(chunk for _ in range(10)),  # past boto3's 8 MiB multipart threshold
        filename="big.bin",
        purpose="batch_output",
    )
    assert file.bytes == 10 * len(chunk)
    (key,) = _objects(moto_s3, s3_files)
    assert _client(moto_s3).head_object(Bucket=BUCKET, Key=key)["ContentLength"] == file.bytes
    assert b"".join(file_chunks(file=file)) == chunk * 10
