"""The services batches and other apps build on: files made from a stream of chunks, read back
as chunks or lines, and nothing half-written left by a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import IntegrityError

from files.batch_input import batch_lines
from files.models import File
from files.selectors import file_chunks, file_get_visible, file_lines, file_open
from files.services import file_create
from gateway.context import Caller
from gateway.errors import NotFoundError, RequestTooLargeError
from tests.factories import TeamFactory
from tests.files.conftest import blobs


def test_lines_split_across_chunks_come_out_whole() -> None:
    chunks = [b'{"a"', b": 1}\n\n", b"x\ny", b"", b"z\n", b"last"]
    assert list(batch_lines(chunks=chunks)) == [
        (1, b'{"a": 1}'),
        (3, b"x"),
        (4, b"yz"),
        (5, b"last"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_file_from_a_stream_reads_back_in_chunks_and_lines(files_dir: Path) -> None:
    team = TeamFactory()
    caller = Caller(organization_id=team.organization_id, team_id=team.pk)

    def output() -> Iterator[bytes]:
        for n in range(3000):
            yield f'{{"custom_id": "{n}"}}\n'.encode()

    file = file_create(caller=caller, chunks=output(), filename="out.jsonl", purpose="batch_output")
    assert (file.purpose, file.expires_at, file.team_id) == ("batch_output", None, team.pk)
    assert file.bytes == sum(len(c) for c in output())
    assert b"".join(file_chunks(file=file)) == b"".join(output())
    with file_open(file=file) as stream:
        assert stream.read(18) == b'{"custom_id": "0"}'
    lines = list(file_lines(file=file))
    assert lines[0] == (1, b'{"custom_id": "0"}')
    assert lines[-1] == (3000, b'{"custom_id": "2999"}')
    assert file_get_visible(caller=caller, file_id=file.file_id) == file
    with pytest.raises(NotFoundError):
        file_get_visible(caller=Caller(organization_id=-1, team_id=-1), file_id=file.file_id)


@pytest.mark.django_db(transaction=True)
def test_a_stream_over_its_bound_leaves_nothing(files_dir: Path) -> None:
    caller = Caller(is_master=True)
    with pytest.raises(RequestTooLargeError):
        file_create(
            caller=caller,
            chunks=iter([b"x" * 600, b"x" * 600]),
            filename="f",
            purpose="user_data",
            max_bytes=1000,
        )
    assert File.objects.count() == 0
    assert blobs(files_dir) == []


@pytest.mark.django_db(transaction=True)
def test_a_row_that_cannot_be_written_leaves_no_blob(files_dir: Path) -> None:
    # A key deleted while its file was being stored: the row's reference fails.
    caller = Caller(key_id=987654, organization_id=None)
    with pytest.raises(IntegrityError):
        file_create(caller=caller, chunks=[b"data"], filename="f", purpose="user_data")
    assert File.objects.count() == 0
    assert blobs(files_dir) == []
