from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from tenants.models import Organization, ScimToken
from tenants.scim.services import scim_token_create
from tests.factories import OrganizationFactory

BASE = "http://testserver/scim/v2/"
CONTENT_TYPE = "application/scim+json"


@dataclass
class ScimResult:
    status: int
    body: Any
    content_type: str
    headers: Any


@dataclass
class ScimClient:
    """Django's test client speaking SCIM for one organization's token."""

    organization: Organization
    token: ScimToken
    secret: str
    client: Client

    def request(self, method: str, path: str, body: Any = None, **extra: Any) -> ScimResult:
        kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {self.secret}", **extra}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["content_type"] = CONTENT_TYPE
        response = getattr(self.client, method.lower())(f"/scim/v2/{path}", **kwargs)
        content = response.content
        return ScimResult(
            status=response.status_code,
            body=json.loads(content) if content else None,
            content_type=response.get("Content-Type", ""),
            headers=response,
        )

    def get(self, path: str, **extra: Any) -> ScimResult:
        return self.request("GET", path, **extra)

    def post(self, path: str, body: Any) -> ScimResult:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> ScimResult:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any) -> ScimResult:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> ScimResult:
        return self.request("DELETE", path)


def make_scim_client(organization: Organization | None = None) -> ScimClient:
    organization = organization or OrganizationFactory()
    token, secret = scim_token_create(organization=organization, name="okta")
    return ScimClient(organization=organization, token=token, secret=secret, client=Client())


@pytest.fixture
def scim(db: None) -> ScimClient:
    return make_scim_client()


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }
