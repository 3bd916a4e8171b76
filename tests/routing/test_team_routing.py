"""Team and organization routing metadata (regions, priority, tags) on /v1: the key's own
settings first, then its team's, then its organization's; cached, and pushed on change."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.auth import _caller_from_database
from keys.services import key_create
from tenants.models import Team
from tenants.services import organization_update, team_update
from tests.factories import OrganizationFactory, TeamFactory
from tests.gateway.test_auth import queries_by_server  # noqa: F401 - a fixture
from tests.live import broadcast_listening
from tests.routing.conftest import served_by


def _post(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "group", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=30,
    )


@pytest.fixture
def regional(openai_emulator, install_deployments, deployment):
    install_deployments(deployment("us-east", region="us"), deployment("eu-west", region="eu"))
    return openai_emulator


def test_team_pinned_to_eu_only_reaches_eu_and_a_change_applies_within_a_second(
    regional,
    live_ogem,
    make_key,
    queries_by_server,  # noqa: F811
    settings,
) -> None:
    team = TeamFactory(metadata={"regions": ["eu"]})
    key = make_key(team=team)
    # Warming up reads the key with its team (and starts the invalidation listener, which
    # begins with an empty cache): once it listens, the next request fills the cache for good.
    assert _post(live_ogem.url, key).status_code == 200
    if settings.REDIS_URL:
        broadcast_listening()
    assert _post(live_ogem.url, key).status_code == 200
    queries_by_server.clear()
    for _ in range(10):
        assert _post(live_ogem.url, key).status_code == 200
    assert served_by(regional) == ["eu-west"] * 12
    assert queries_by_server == []  # the team's metadata came with the cached caller

    team_update(team=Team.objects.get(pk=team.pk), metadata={"regions": ["us"]})
    deadline = time.monotonic() + 1.0
    while _post(live_ogem.url, key).headers["x-ogem-deployment"].endswith(":eu-west"):
        assert time.monotonic() < deadline, "the team's new regions did not apply within 1 s"
        time.sleep(0.02)
    regional.requests.clear()
    queries_by_server.clear()
    for _ in range(10):
        assert _post(live_ogem.url, key).status_code == 200
    assert served_by(regional) == ["us-east"] * 10
    assert queries_by_server == []


def test_organization_regions_apply_to_its_teams_keys(regional, live_ogem, make_key) -> None:
    team = TeamFactory(organization=OrganizationFactory(metadata={"regions": ["ap"]}))
    key = make_key(team=team)
    refused = _post(live_ogem.url, key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "region_not_allowed"
    organization_update(organization=team.organization, metadata={"regions": ["eu"]})
    deadline = time.monotonic() + 1.0
    while (response := _post(live_ogem.url, key)).status_code != 200:
        assert time.monotonic() < deadline, "the organization's change did not apply within 1 s"
        time.sleep(0.02)
    assert response.headers["x-ogem-deployment"].endswith(":eu-west")


@pytest.mark.django_db(transaction=True)
def test_key_settings_override_team_settings_which_override_the_organization(
    django_assert_num_queries,
) -> None:
    organization = OrganizationFactory(
        metadata={"regions": ["ap"], "priority": 50, "tags": ["org-tag"]}
    )
    team = TeamFactory(
        organization=organization, metadata={"regions": ["eu"], "tags": ["team-tag"]}
    )
    own = key_create(
        name="own", team=team, metadata={"regions": ["us"], "priority": 3}, tags=["key-tag"]
    )
    inherited = key_create(name="inherited", team=team)
    first = key_create(name="first", team=team, metadata={"priority": 0})
    with django_assert_num_queries(1):  # the key's row brings its team and organization along
        caller = _caller_from_database(own.secret)
    assert caller is not None
    assert (caller.regions, caller.priority, caller.tags) == (("us",), 3, ("key-tag",))
    caller = _caller_from_database(inherited.secret)
    assert caller is not None
    assert (caller.regions, caller.priority, caller.tags) == (("eu",), 50, ("team-tag",))
    caller = _caller_from_database(first.secret)
    assert caller is not None
    assert caller.priority == 0  # zero is a priority, not "unset"
