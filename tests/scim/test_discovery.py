from __future__ import annotations

import pytest

from tests.scim.conftest import BASE, ScimClient

pytestmark = pytest.mark.django_db

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def test_service_provider_config_advertises_what_is_implemented(scim: ScimClient) -> None:
    response = scim.get("ServiceProviderConfig")
    assert response.status == 200
    assert response.content_type == "application/scim+json"
    assert response.body == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A per-organization SCIM token created by an Ogem administrator.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{BASE}ServiceProviderConfig",
        },
    }


def test_resource_types(scim: ScimClient) -> None:
    body = scim.get("ResourceTypes").body
    assert body["totalResults"] == 2
    assert [(r["id"], r["endpoint"], r["schema"]) for r in body["Resources"]] == [
        ("User", "/Users", "urn:ietf:params:scim:schemas:core:2.0:User"),
        ("Group", "/Groups", "urn:ietf:params:scim:schemas:core:2.0:Group"),
    ]
    assert scim.get("ResourceTypes/Group").body["meta"] == {
        "resourceType": "ResourceType",
        "location": f"{BASE}ResourceTypes/Group",
    }


def test_schemas(scim: ScimClient) -> None:
    body = scim.get("Schemas").body
    assert [r["name"] for r in body["Resources"]] == [
        "User",
        "Group",
        "Schema",
        "ResourceType",
        "ServiceProviderConfig",
    ]
    user = scim.get("Schemas/urn:ietf:params:scim:schemas:core:2.0:User").body
    assert [a["name"] for a in user["attributes"]] == [
        "userName",
        "name",
        "displayName",
        "emails",
        "active",
        "groups",
    ]
    assert [a["name"] for a in user["attributes"][1]["subAttributes"]] == [
        "givenName",
        "familyName",
    ]


def test_unknown_endpoints_and_methods(scim: ScimClient) -> None:
    for path in ("Schemas/urn:nope", "ResourceTypes/Nope", "Nope", "Users/1/extra"):
        response = scim.get(path)
        assert response.status == 404
        assert response.body["schemas"] == [ERROR]
        assert response.body["status"] == "404"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = scim.request(method, "ServiceProviderConfig", {})
        assert response.status == 405
        assert response.body == {
            "schemas": [ERROR],
            "status": "405",
            "detail": f'Method "{method}" not allowed.',
        }


def test_any_accept_header_gets_scim_json(scim: ScimClient) -> None:
    for accept in ("application/scim+json", "application/json", "text/html", "*/*"):
        response = scim.get("Users", HTTP_ACCEPT=accept)
        assert response.status == 200
        assert response.content_type == "application/scim+json"
