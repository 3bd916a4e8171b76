from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.live import LiveServer


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Every test stores its files in a directory of its own."""
    root = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    yield root


def blobs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def key_sdk(live_ogem: LiveServer, make_key: Callable[..., str]) -> Callable[..., openai.OpenAI]:
    """The SDK with a new virtual key (options as `make_key` takes them)."""

    def make(**options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**options), max_retries=0
        )

    return make
