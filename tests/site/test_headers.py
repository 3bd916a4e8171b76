"""Security headers: HSTS from production's environment, the Content-Security-Policy on admin,
portal and API docs, Swagger UI served by Ogem itself, and the public management schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from tenants.models import User
from tests.factories import MembershipFactory, OrganizationFactory
from tests.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)
_PRODUCTION_PROBE = """
import django
django.setup()
from django.test import Client
direct = Client().get("/health-of-nothing/", secure=True)
proxied = Client().get("/health-of-nothing/", HTTP_X_FORWARDED_PROTO="https")
plain = Client().get("/health-of-nothing/")
print(direct.headers.get("Strict-Transport-Security"))
print(proxied.headers.get("Strict-Transport-Security"))
print(plain.headers.get("Strict-Transport-Security"))
"""


def _production(**environ: str) -> list[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.production",
        "DJANGO_SECRET_KEY": "s" * 40,
        "OGEM_MASTER_KEY": "sk-master-" + "m" * 20,
        "OGEM_ENCRYPTION_KEYS": "e" * 40,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "")
        or "postgres://postgres@127.0.0.1:5432/unused",
        **environ,
    }
    for name in ("DJANGO_SECURE_HSTS_SECONDS", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS"):
        if name not in environ:
            env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _PRODUCTION_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.split("\n")[-4:-1]


def test_hsts_is_sent_over_https_when_configured() -> None:
    configured = _production(
        DJANGO_SECURE_HSTS_SECONDS="31536000",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        DJANGO_SECURE_HSTS_PRELOAD="true",
    )
    assert configured == [
        "max-age=31536000; includeSubDomains; preload",
        "max-age=31536000; includeSubDomains; preload",
        "None",  # never over plain HTTP
    ]
    assert _production() == ["None", "None", "None"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/accounts/login/", "/api/v1/docs/"])
def test_pages_carry_the_content_security_policy(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == CSP
    html = response.content.decode()
    # Nothing the policy would block: no inline script or style, no other host.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [
        tag for tag in re.findall(r"<script[^>]*>", html) if "application/json" in tag
    ]
    assert "<style" not in html
    assert " style=" not in html
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", html) == []


@pytest.mark.django_db
def test_portal_pages_carry_the_content_security_policy() -> None:
    member = MembershipFactory(organization=OrganizationFactory()).user
    client = Client()
    client.force_login(User.objects.get(pk=member.pk))
    for path in ("/", "/keys/", "/usage/", "/playground/", "/models/", "/teams/"):
        response = client.get(path)
        assert (path, response.status_code) == (path, 200)
        assert response["Content-Security-Policy"] == CSP
        html = response.content.decode()
        assert "<style" not in html
        assert re.findall(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))", html) == []


@pytest.mark.live
def test_swagger_ui_is_served_by_ogem(live_ogem: LiveServer) -> None:
    page = httpx.get(f"{live_ogem.url}/api/v1/docs/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text)
    assert assets == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
        "/api/v1/docs/?script=",
    ]
    for asset in assets:
        fetched = httpx.get(f"{live_ogem.url}{asset}")
        assert (asset, fetched.status_code) == (asset, 200)
        assert len(fetched.content) > 100
    init = httpx.get(f"{live_ogem.url}/api/v1/docs/?script=")
    assert init.headers["content-type"].startswith("application/javascript")
    assert '"validatorUrl": null' in init.text  # no badge fetched from swagger.io
    assert re.findall(r"https?://", init.text) == []


@pytest.mark.live
def test_the_management_schema_is_public_and_holds_no_tenant_data(live_ogem: LiveServer) -> None:
    OrganizationFactory(name="Zanzibar Secret Holdings", slug="zanzibar-secret")
    schema = httpx.get(f"{live_ogem.url}/api/v1/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Ogem management API"
    assert "/api/v1/organizations/" in schema.json()["paths"]
    assert "zanzibar" not in schema.text.lower()
    assert settings.OGEM_MASTER_KEY not in schema.text
