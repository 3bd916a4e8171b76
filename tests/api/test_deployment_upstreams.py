"""What an organization's deployment may point at and hold, on /api/v1/models: upstream
addresses inside the operator's network, operator-only params and prices below zero."""

from __future__ import annotations

import pytest

from gateway.models import ModelDeployment
from tests.api.conftest import World

pytestmark = pytest.mark.django_db

REFUSED_ADDRESS = (
    "The host {host!r} resolves to a loopback, private, link-local or other non-public address, "
    "which an organization's deployment may not reach (a proxy admin can allow a network in the "
    "organization's upstream_networks)."
)
# One URL per address class an organization's deployment may not reach.
INTERNAL = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # link-local: metadata
    ("http://0.0.0.0:8080/v1", "0.0.0.0"),  # unspecified
    ("http://[::]:8080/v1", "::"),  # unspecified, IPv6
    ("http://127.0.0.1:6379", "127.0.0.1"),  # loopback
    ("http://[::1]:8080/v1", "::1"),  # loopback, IPv6
    ("http://localhost:6379", "localhost"),  # a name that resolves to loopback
    ("http://10.1.2.3/v1", "10.1.2.3"),  # private
    ("http://192.168.0.10/v1", "192.168.0.10"),  # private
    ("http://[fd00::1]/v1", "fd00::1"),  # unique local (private), IPv6
    ("http://100.64.0.1/v1", "100.64.0.1"),  # carrier-grade NAT
    ("http://224.0.0.1/v1", "224.0.0.1"),  # multicast
    ("http://[::ffff:127.0.0.1]/v1", "::ffff:127.0.0.1"),  # loopback, IPv4-mapped
]
PUBLIC = "https://93.184.215.14/v1"


def _deployment(world: World, api_base: str, **extra: object) -> dict[str, object]:
    return {
        "model_name": "tenant-model",
        "provider": "openai_compatible",
        "upstream_model": "m",
        "api_base": api_base,
        "organization": world.a.organization.pk,
        **extra,
    }


@pytest.mark.parametrize(("url", "host"), INTERNAL)
def test_an_org_admin_cannot_point_a_deployment_inside_the_network(
    world: World, url: str, host: str
) -> None:
    response = world.clients["org_admin"].post(
        "/api/v1/models", _deployment(world, url), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"api_base": [REFUSED_ADDRESS.format(host=host)]}
    assert not ModelDeployment.objects.filter(model_name="tenant-model").exists()


@pytest.mark.parametrize(("url", "host"), INTERNAL)
def test_the_master_key_still_points_shared_deployments_anywhere(
    world: World, url: str, host: str
) -> None:
    response = world.clients["master"].post(
        "/api/v1/models", _deployment(world, url, organization=None), format="json"
    )
    assert response.status_code == 201
    assert ModelDeployment.objects.get(pk=response.json()["id"]).api_base == url


def test_an_org_admin_cannot_move_a_deployment_inside_the_network_later(world: World) -> None:
    client = world.clients["org_admin"]
    created = client.post("/api/v1/models", _deployment(world, PUBLIC), format="json")
    assert created.status_code == 201
    moved = client.patch(
        f"/api/v1/models/{created.json()['id']}",
        {"api_base": "http://169.254.169.254/latest/"},
        format="json",
    )
    assert moved.status_code == 400
    assert moved.json() == {"api_base": [REFUSED_ADDRESS.format(host="169.254.169.254")]}
    assert ModelDeployment.objects.get(pk=created.json()["id"]).api_base == PUBLIC


def test_a_host_that_does_not_resolve_is_refused(world: World) -> None:
    response = world.clients["org_admin"].post(
        "/api/v1/models", _deployment(world, "https://no-such-host.invalid/v1"), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"api_base": ["The host 'no-such-host.invalid' does not resolve."]}


def test_an_upstream_url_param_is_checked_like_api_base(world: World) -> None:
    body = _deployment(
        world, PUBLIC, params={"aws_bedrock_runtime_endpoint": "http://127.0.0.1:6379"}
    )
    response = world.clients["org_admin"].post("/api/v1/models", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "params": [
            "aws_bedrock_runtime_endpoint: " + REFUSED_ADDRESS.format(host="127.0.0.1"),
        ]
    }


def test_a_network_the_operator_allows_is_reachable_for_that_organization_only(
    world: World,
) -> None:
    a, b = world.a.organization, world.b.organization
    refused = world.clients["org_admin"].patch(
        f"/api/v1/organizations/{a.pk}", {"upstream_networks": ["127.0.0.0/8"]}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Only proxy admins set upstream_networks."}
    invalid = world.clients["master"].patch(
        f"/api/v1/organizations/{a.pk}", {"upstream_networks": ["127.0.0.0/33"]}, format="json"
    )
    assert invalid.status_code == 400
    assert invalid.json() == {"upstream_networks": ["'127.0.0.0/33' is not a CIDR network."]}
    allowed = world.clients["master"].patch(
        f"/api/v1/organizations/{a.pk}", {"upstream_networks": ["127.0.0.0/8"]}, format="json"
    )
    assert allowed.status_code == 200
    assert allowed.json()["upstream_networks"] == ["127.0.0.0/8"]

    client = world.clients["org_admin"]
    inside = client.post("/api/v1/models", _deployment(world, "http://127.0.0.1:6379"), "json")
    assert inside.status_code == 201
    # The grant is for loopback only: metadata and other private ranges stay refused.
    metadata = client.post(
        "/api/v1/models", _deployment(world, "http://169.254.169.254/"), format="json"
    )
    assert metadata.status_code == 400
    # Another organization is not affected; the master key is checked by the same rule.
    other = world.clients["master"].post(
        "/api/v1/models",
        {**_deployment(world, "http://127.0.0.1:6379"), "organization": b.pk},
        format="json",
    )
    assert other.status_code == 400
    assert other.json() == {"api_base": [REFUSED_ADDRESS.format(host="127.0.0.1")]}


@pytest.mark.parametrize("name", ["allow_private_urls", "max_media_bytes"])
def test_operator_only_params_are_refused_from_an_org_admin(world: World, name: str) -> None:
    value = True if name == "allow_private_urls" else 10**10
    body = _deployment(world, PUBLIC, params={name: value})
    response = world.clients["org_admin"].post("/api/v1/models", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"params": [f"{name} can only be set by a proxy admin."]}
    # A proxy admin sets it; the org admin may then edit the row and keep it as it is.
    created = world.clients["master"].post("/api/v1/models", body, format="json")
    assert created.status_code == 201
    kept = world.clients["org_admin"].patch(
        f"/api/v1/models/{created.json()['id']}",
        {"weight": 2, "params": {name: value, "temperature": 0}},
        format="json",
    )
    assert kept.status_code == 200
    changed = world.clients["org_admin"].patch(
        f"/api/v1/models/{created.json()['id']}", {"params": {name: "other"}}, format="json"
    )
    assert changed.status_code == 400
    assert ModelDeployment.objects.get(pk=created.json()["id"]).params == {
        name: value,
        "temperature": 0,
    }


@pytest.mark.parametrize("role", ["org_admin", "master"])
def test_negative_prices_are_refused(world: World, role: str) -> None:
    body = _deployment(
        world,
        PUBLIC,
        organization=world.a.organization.pk if role == "org_admin" else None,
        params={
            "input_cost_per_token": -1,
            "output_cost_per_token": "0.000002",
            "cache_read_input_token_cost": "cheap",
            "model_info": {"output_cost_per_image": {"1024x1024": -0.04}},
        },
    )
    response = world.clients[role].post("/api/v1/models", body, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "params": [
            "input_cost_per_token must be a price of 0 or more, got -1",
            "cache_read_input_token_cost must be a number, got 'cheap'",
            "model_info.output_cost_per_image.1024x1024 must be a price of 0 or more, got -0.04",
        ]
    }
    assert not ModelDeployment.objects.filter(model_name="tenant-model").exists()
