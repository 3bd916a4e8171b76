"""The blobs behind files and upload parts, through Django's storage API (the `files` alias of
settings.STORAGES: a directory in the embedded default, S3 through django-storages in production).

Contents move in chunks of CHUNK bytes: nothing here holds a whole file in memory.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from django.core.files import File as DjangoFile
from django.core.files.storage import Storage, storages

CHUNK = 1024 * 1024


def files_storage() -> Storage:
    return storages["files"]


def blob_save(*, name: str, content: IO[bytes]) -> str:
    """Store `content` (read from where it is to its end) under `name`; the name it got."""
    return files_storage().save(name, DjangoFile(content, name=name))


def blob_open(*, name: str) -> IO[bytes]:
    return files_storage().open(name, "rb")


def blob_chunks(*, name: str, size: int = CHUNK) -> Iterator[bytes]:
    """The blob's contents in chunks, closing it once read (or once the iterator is closed)."""
    with blob_open(name=name) as blob:
        while chunk := blob.read(size):
            yield chunk


def blob_delete(*, name: str) -> None:
    """Idempotent: a blob already gone is not an error."""
    storage = files_storage()
    try:
        storage.delete(name)
    except FileNotFoundError:
        pass


class ChunksReader(io.RawIOBase):
    """A readable, unseekable stream over an iterable of byte chunks, with a hook that sees each
    chunk once (a digest, a size bound) before the reader passes it on."""

    def __init__(
        self, chunks: Iterable[bytes], *, observe: Callable[[bytes], None] | None = None
    ) -> None:
        self._chunks = iter(chunks)
        self._observe = observe
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            if self._observe is not None:
                self._observe(chunk)
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def storage_failed(exc: BaseException) -> bool:
    """Whether an exception is the storage's: a local disk's error, or S3's (botocore is only
    looked at once something loaded it: local storage never does)."""
    if isinstance(exc, OSError):
        return True
    if "botocore.exceptions" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError

        return isinstance(exc, BotoCoreError | ClientError)
    return False
