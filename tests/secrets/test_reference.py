"""The secret:// grammar."""

from __future__ import annotations

import pytest

from gateway.secrets import SecretManagerError, SecretReference, secret_reference_parse


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("secret://vault/kv/openai#api_key", ("vault", "kv/openai", "api_key")),
        ("secret://vault/kv/team/a/openai", ("vault", "kv/team/a/openai", "")),
        ("secret://aws/prod/openai#api_key", ("aws", "prod/openai", "api_key")),
        ("secret://gcp/projects/p/secrets/openai", ("gcp", "projects/p/secrets/openai", "")),
        (
            "secret://gcp/projects/p/secrets/openai/versions/3#key",
            ("gcp", "projects/p/secrets/openai/versions/3", "key"),
        ),
        ("secret://azure/myvault/openai-key", ("azure", "myvault/openai-key", "")),
        ("secret://azure/myvault/openai-key/abc123", ("azure", "myvault/openai-key/abc123", "")),
        ("secret://env/OPENAI_KEY", ("env", "OPENAI_KEY", "")),
        ("secret://file//run/secrets/openai", ("file", "/run/secrets/openai", "")),
    ],
)
def test_parse(reference: str, expected: tuple[str, str, str]) -> None:
    assert secret_reference_parse(reference) == SecretReference(reference, *expected)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("secret://keepass/x", r'unknown secret manager "keepass" \(env, file, aws, gcp, vault'),
        ("secret://vault", r'"secret://vault" names no secret'),
        ("secret://vault/openai", r"a Vault reference is secret://vault/<mount>/<path>#<field>"),
        ("secret://vault/kv/openai#", r"has an empty #field"),
        ("secret://gcp/p/openai", r"a Google reference is secret://gcp/projects/<project>/"),
        ("secret://gcp/projects/p/secrets/s/v/1", r"a Google reference is"),
        ("secret://azure/onlyvault", r"an Azure reference is secret://azure/<vault>/<name>"),
        ("secret://file/relative", r"a file reference is secret://file//<absolute path>"),
    ],
)
def test_malformed(reference: str, message: str) -> None:
    with pytest.raises(SecretManagerError, match=message):
        secret_reference_parse(reference)
