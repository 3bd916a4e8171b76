from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer, free_port

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
# The organization's IdP in allauth terms: its callback is /accounts/oidc/<id>/login/callback/.
IDP_PROVIDER_ID = "acme"


@dataclass
class LocalIdp:
    issuer: str
    client_id: str
    client_secret: str
    user: str
    email: str


def _npm_ci() -> None:
    if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    assert npm, "npm (Node 20) is needed to run the local OpenID Connect provider"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True, timeout=600)


@pytest.fixture(scope="session")
def local_idp(ogem_server: LiveServer) -> Iterator[LocalIdp]:
    """oidc-provider on Node with one client (redirecting to the live Ogem) and one user."""
    _npm_ci()
    node = shutil.which("node")
    assert node, "node is needed to run the local OpenID Connect provider"
    port = free_port()
    idp = LocalIdp(
        issuer=f"http://127.0.0.1:{port}",
        client_id="ogem-portal",
        client_secret=secrets.token_urlsafe(24),
        user="alice",
        email="alice@acme.test",
    )
    env = {
        **os.environ,
        "IDP_PORT": str(port),
        "IDP_CLIENT_ID": idp.client_id,
        "IDP_CLIENT_SECRET": idp.client_secret,
        "IDP_REDIRECT_URIS": ",".join(
            f"{ogem_server.url}/accounts/oidc/{provider_id}/login/callback/"
            for provider_id in (IDP_PROVIDER_ID, "sso")
        ),
        "IDP_USER": idp.user,
        "IDP_EMAIL": idp.email,
    }
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=IDP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready"), f"the local IdP did not start: {line!r}"
        yield idp
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A Playwright page in Debian's Chromium. Playwright's sync API runs an event loop in this
    thread, so use the ORM before or after the ``with`` block, not inside it."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install -y chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
