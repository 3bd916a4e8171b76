"""Form data the admin's model deployment page posts, for the tests that drive it."""

from __future__ import annotations

from typing import Any


def deployment_form(**fields: Any) -> dict[str, Any]:
    """Every field of the add/change form with its empty or default value, then `fields`."""
    return {
        "model_name": "exfil",
        "provider": "openai_compatible",
        "upstream_model": "m",
        "organization": "",
        "enabled": "on",
        "api_base": "https://93.184.216.34/v1",
        "api_version": "",
        "region": "",
        "params": "{}",
        "api_key": "",
        "credential": "",
        "credential_ref": "",
        "access_groups": "[]",
        "tags": "[]",
        "priority": "0",
        "weight": "1",
        "rpm": "",
        "tpm": "",
        "connect_timeout": "5",
        "first_byte_timeout": "60",
        "total_timeout": "600",
        **fields,
    }
