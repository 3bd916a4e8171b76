from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer
from tests.node_idp import node_idp_running

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


@pytest.fixture(scope="session")
def local_idp(ogem_server: LiveServer) -> Iterator[LocalIdp]:
    """oidc-provider on Node with one client (redirecting to the live Ogem) and one user."""
    client_id, client_secret = "ogem-portal", secrets.token_urlsafe(24)
    user, email = "alice", "alice@acme.test"
    env = {
        "IDP_CLIENT_ID": client_id,
        "IDP_CLIENT_SECRET": client_secret,
        "IDP_REDIRECT_URIS": ",".join(
            f"{ogem_server.url}/accounts/oidc/{provider_id}/login/callback/"
            for provider_id in (IDP_PROVIDER_ID, "sso")
        ),
        "IDP_USER": user,
        "IDP_EMAIL": email,
    }
    with node_idp_running(env) as issuer:
        yield LocalIdp(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            user=user,
            email=email,
        )


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
