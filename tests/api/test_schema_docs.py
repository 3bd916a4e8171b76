"""The management API's OpenAPI document and its docs page (issue 16, item 14): the schema builds
without a warning (`manage.py spectacular --validate --fail-on-warn`), and /api/v1/docs/ works
offline: nothing it loads comes from another host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def test_schema_generation_has_no_warning(tmp_path: Path) -> None:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"}
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(tmp_path / "schema.yaml"),
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (0, "")
    schema = (tmp_path / "schema.yaml").read_text()
    # Both ways of signing in are documented: keys and identity provider tokens.
    assert "bearerKey:" in schema
    assert "identityProviderToken:" in schema
    assert "/api/v1/keys/" in schema
    assert "/scim/v2/" not in schema  # SCIM is another API


@pytest.mark.django_db
def test_docs_page_references_no_external_url() -> None:
    client = Client()
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert EXTERNAL.findall(html) == []
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
    assert assets and all(asset.startswith("/") for asset in assets)
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert EXTERNAL.findall(script.content.decode()) == []
    # Shipped in the package (drf-spectacular-sidecar); tests/site/test_headers.py fetches them
    # from a live server.
    for asset in assets:
        if asset.startswith(settings.STATIC_URL):
            assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
