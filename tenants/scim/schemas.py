"""SCIM discovery documents (RFC 7643 §5-7): what this server implements, and nothing more.

The attribute definitions here also drive request parsing (canonical attribute names, which
attributes are multi-valued or read-only), so the documents cannot drift from the behaviour.
"""

from __future__ import annotations

from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

MAX_RESULTS = 200


def _attr(
    name: str,
    type_: str = "string",
    *,
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    description: str = "",
    sub: list[dict[str, Any]] | None = None,
    canonical: list[str] | None = None,
    reference_types: list[str] | None = None,
) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name,
        "type": type_,
        "multiValued": multi,
        "description": description or name,
        "required": required,
        "mutability": mutability,
        "returned": returned,
    }
    if type_ in {"string", "reference", "binary"}:
        attribute["caseExact"] = case_exact
    if type_ == "string":
        attribute["uniqueness"] = uniqueness
    if sub is not None:
        attribute["subAttributes"] = sub
    if canonical is not None:
        attribute["canonicalValues"] = canonical
    if reference_types is not None:
        attribute["referenceTypes"] = reference_types
    return attribute


USER_ATTRIBUTES = [
    _attr(
        "userName",
        required=True,
        uniqueness="server",
        description="Unique identifier for the user, typically the sign-in name.",
    ),
    _attr(
        "name",
        "complex",
        description="The components of the user's name.",
        sub=[
            _attr("givenName", description="Given (first) name."),
            _attr("familyName", description="Family (last) name."),
        ],
    ),
    _attr("displayName", description="The name of the user, suitable for display."),
    _attr(
        "emails",
        "complex",
        multi=True,
        description="Email addresses for the user.",
        sub=[
            _attr("value", description="Email address."),
            _attr("type", canonical=["work", "home", "other"], description="Kind of address."),
            _attr("primary", "boolean", description="The primary address."),
        ],
    ),
    _attr("active", "boolean", description="Whether the user may use this organization."),
    _attr(
        "groups",
        "complex",
        multi=True,
        mutability="readOnly",
        description="Teams of the organization the user belongs to.",
        sub=[
            _attr("value", mutability="readOnly", description="Team id."),
            _attr(
                "$ref",
                "reference",
                mutability="readOnly",
                reference_types=["Group"],
                description="URI of the team.",
            ),
            _attr("display", mutability="readOnly", description="Team name."),
        ],
    ),
]

GROUP_ATTRIBUTES = [
    _attr("displayName", required=True, description="The team's name."),
    _attr(
        "members",
        "complex",
        multi=True,
        description="Members of the team.",
        sub=[
            _attr("value", mutability="immutable", description="User id."),
            _attr(
                "$ref",
                "reference",
                mutability="immutable",
                reference_types=["User"],
                description="URI of the user.",
            ),
            _attr("type", mutability="immutable", canonical=["User"], description="Always User."),
        ],
    ),
]

_META_SCHEMA_ATTRIBUTES = [
    _attr("id", mutability="readOnly", case_exact=True, description="The schema URI."),
    _attr("name", mutability="readOnly", description="The schema's name."),
    _attr("description", mutability="readOnly", description="The schema's description."),
    _attr(
        "attributes",
        "complex",
        multi=True,
        mutability="readOnly",
        description="The attributes the schema defines.",
        sub=[
            _attr("name", mutability="readOnly", case_exact=True),
            _attr("type", mutability="readOnly"),
            _attr("multiValued", "boolean", mutability="readOnly"),
            _attr("description", mutability="readOnly"),
            _attr("required", "boolean", mutability="readOnly"),
            _attr("canonicalValues", multi=True, mutability="readOnly"),
            _attr("caseExact", "boolean", mutability="readOnly"),
            _attr("mutability", mutability="readOnly"),
            _attr("returned", mutability="readOnly"),
            _attr("uniqueness", mutability="readOnly"),
            _attr("referenceTypes", multi=True, mutability="readOnly"),
        ],
    ),
]

_RESOURCE_TYPE_ATTRIBUTES = [
    _attr("id", mutability="readOnly", case_exact=True, description="The resource type's id."),
    _attr("name", mutability="readOnly", required=True, description="The resource type's name."),
    _attr("description", mutability="readOnly", description="The resource type's description."),
    _attr(
        "endpoint",
        "reference",
        mutability="readOnly",
        required=True,
        reference_types=["uri"],
        description="The endpoint's path relative to the base URL.",
    ),
    _attr(
        "schema",
        "reference",
        mutability="readOnly",
        required=True,
        case_exact=True,
        reference_types=["uri"],
        description="The resource type's primary schema URI.",
    ),
    _attr(
        "schemaExtensions",
        "complex",
        multi=True,
        mutability="readOnly",
        description="Schema extensions of the resource type.",
        sub=[
            _attr("schema", "reference", mutability="readOnly", reference_types=["uri"]),
            _attr("required", "boolean", mutability="readOnly"),
        ],
    ),
]


def _supported(name: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return _attr(
        name,
        "complex",
        mutability="readOnly",
        required=True,
        sub=[_attr("supported", "boolean", mutability="readOnly", required=True), *extra],
    )


_SPC_ATTRIBUTES = [
    _attr("documentationUri", "reference", mutability="readOnly", reference_types=["external"]),
    _supported("patch"),
    _supported(
        "bulk",
        _attr("maxOperations", "integer", mutability="readOnly", required=True),
        _attr("maxPayloadSize", "integer", mutability="readOnly", required=True),
    ),
    _supported("filter", _attr("maxResults", "integer", mutability="readOnly", required=True)),
    _supported("changePassword"),
    _supported("sort"),
    _supported("etag"),
    _attr(
        "authenticationSchemes",
        "complex",
        multi=True,
        mutability="readOnly",
        required=True,
        sub=[
            _attr("type", mutability="readOnly", required=True),
            _attr("name", mutability="readOnly", required=True),
            _attr("description", mutability="readOnly", required=True),
            _attr("primary", "boolean", mutability="readOnly"),
        ],
    ),
]

_SCHEMAS: list[tuple[str, str, str, list[dict[str, Any]]]] = [
    (USER_SCHEMA, "User", "A member of the organization.", USER_ATTRIBUTES),
    (GROUP_SCHEMA, "Group", "A team of the organization.", GROUP_ATTRIBUTES),
    (SCHEMA_SCHEMA, "Schema", "Describes a schema.", _META_SCHEMA_ATTRIBUTES),
    (RESOURCE_TYPE_SCHEMA, "ResourceType", "Describes a resource type.", _RESOURCE_TYPE_ATTRIBUTES),
    (SPC_SCHEMA, "ServiceProviderConfig", "What this server supports.", _SPC_ATTRIBUTES),
]

RESOURCE_TYPES = [
    ("User", "/Users", USER_SCHEMA, "Members of the organization"),
    ("Group", "/Groups", GROUP_SCHEMA, "Teams of the organization"),
]


def schema_documents(*, base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [SCHEMA_SCHEMA],
            "id": schema_id,
            "name": name,
            "description": description,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": f"{base_url}Schemas/{schema_id}"},
        }
        for schema_id, name, description, attributes in _SCHEMAS
    ]


def resource_type_documents(*, base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": name,
            "name": name,
            "description": description,
            "endpoint": endpoint,
            "schema": schema,
            "meta": {"resourceType": "ResourceType", "location": f"{base_url}ResourceTypes/{name}"},
        }
        for name, endpoint, schema, description in RESOURCE_TYPES
    ]


def service_provider_config_document(*, base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
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
            "location": f"{base_url}ServiceProviderConfig",
        },
    }


def canonical_names(attributes: list[dict[str, Any]]) -> dict[str, str]:
    """Lower-cased attribute name → the name the schema spells, for top-level attributes."""
    return {attribute["name"].lower(): attribute["name"] for attribute in attributes}


def attribute_definition(attributes: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for attribute in attributes:
        if attribute["name"].lower() == name.lower():
            return attribute
    return None
