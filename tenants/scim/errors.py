"""SCIM errors (RFC 7644 §3.12): raised by services and selectors, rendered once by the views."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    def __init__(self, status: int, detail: str, *, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def scim_not_found(resource_type: str, resource_id: str) -> ScimError:
    return ScimError(404, f"{resource_type} {resource_id} not found")


def scim_invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, scim_type="invalidValue")
