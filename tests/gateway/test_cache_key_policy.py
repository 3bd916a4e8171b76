"""The response cache's key and sampling policy (docs/caching.md): `ignore_params` and `sampled`,
in the configuration, a model group's `model_info.cache` and an owner's metadata, through the
live server and the official openai SDK; the OpenAI emulator counts the upstream calls."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.gateway import test_cache
from tests.gateway.test_cache import _chat, _messages, _upstream_calls
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)
cache_turned_on = test_cache.cache_on  # the exact cache tests' fixture


def _client(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _statuses(client: openai.OpenAI, messages: list[dict[str, str]], *calls: Any) -> list[str]:
    return [_chat(client, messages, **options).headers["x-ogem-cache"] for options in calls]


def test_ignored_params_are_left_out_of_the_key(emulated_model, cache_turned_on, sdk) -> None:  # type: ignore[no-untyped-def]
    cache_turned_on(ignore_params=("temperature", "seed"))
    emulator = emulated_model()
    messages = _messages()
    assert _statuses(
        sdk,
        messages,
        {"temperature": 0.2, "seed": 1},
        {"temperature": 0.9, "seed": 2},  # differs only in ignored fields: the same entry
        {"temperature": 0.9, "top_p": 0.5},  # top_p is in the key
    ) == ["miss", "hit", "miss"]
    assert _upstream_calls(emulator) == 2


def test_a_model_groups_ignore_params_replace_the_configurations(  # type: ignore[no-untyped-def]
    emulated_model, cache_turned_on, sdk
) -> None:
    cache_turned_on(ignore_params=("temperature",))
    emulator = emulated_model(params={"model_info": {"cache": {"ignore_params": ["top_p"]}}})
    messages = _messages()
    assert _statuses(
        sdk,
        messages,
        {"top_p": 0.5},
        {"top_p": 0.9},  # the group's list: top_p left out
        {"top_p": 0.9, "temperature": 0.3},  # the configuration's list no longer applies
    ) == ["miss", "hit", "miss"]
    assert _upstream_calls(emulator) == 2


def test_sampled_requests_bypass_when_not_allowed(emulated_model, cache_turned_on, sdk) -> None:  # type: ignore[no-untyped-def]
    cache_turned_on(sampled=False)
    emulator = emulated_model()
    messages = _messages()
    # No temperature is the provider's default (1 for OpenAI): sampled.
    assert _statuses(sdk, messages, {}, {}, {"temperature": 0.7}) == ["bypass"] * 3
    assert _statuses(sdk, messages, {"temperature": 0}, {"temperature": 0}) == ["miss", "hit"]
    assert "x-ogem-cache-age" in _chat(sdk, messages, temperature=0).headers
    assert _upstream_calls(emulator) == 4
    # Embeddings do not sample: still cached.
    text = f"embed {messages[0]['content']}"
    statuses = [
        sdk.embeddings.with_raw_response.create(model="emulated", input=text).headers[
            "x-ogem-cache"
        ]
        for _ in range(2)
    ]
    assert statuses == ["miss", "hit"]


def test_a_model_group_may_refuse_sampled_answers(emulated_model, cache_turned_on, sdk) -> None:  # type: ignore[no-untyped-def]
    cache_turned_on()
    emulator = emulated_model(params={"model_info": {"cache": {"sampled": False, "ttl": 600}}})
    messages = _messages()
    assert _statuses(sdk, messages, {"temperature": 1}, {"temperature": 1}) == ["bypass"] * 2
    assert _statuses(sdk, messages, {"temperature": 0}, {"temperature": 0}) == ["miss", "hit"]
    assert _upstream_calls(emulator) == 3


def test_an_owners_metadata_overrides_the_group_and_bad_values_are_ignored(  # type: ignore[no-untyped-def]
    emulated_model, cache_turned_on, make_key, live_ogem
) -> None:
    from tests.factories import TeamFactory

    cache_turned_on()
    emulator = emulated_model(params={"model_info": {"cache": {"sampled": False}}})
    team = TeamFactory(metadata={"cache": {"sampled": True, "ignore_params": ["seed"]}})
    teammate = _client(live_ogem, make_key(team=team))
    messages = _messages()
    # The team's `sampled: true` wins over the group's false; its `seed` is left out.
    assert _statuses(teammate, messages, {"seed": 1}, {"seed": 2}) == ["miss", "hit"]
    # The key's own metadata wins over its team's, field by field.
    strict = _client(live_ogem, make_key(team=team, metadata={"cache": {"sampled": False}}))
    assert _statuses(strict, _messages(), {}, {}) == ["bypass", "bypass"]
    # What makes the request can never be ignored, and a `sampled` that is not a boolean is
    # not a setting: the key's bad values are ignored, its team's stand.
    odd = _client(
        live_ogem,
        make_key(team=team, metadata={"cache": {"ignore_params": ["messages"], "sampled": "no"}}),
    )
    assert _statuses(odd, messages, {"seed": 3}) == ["hit"]  # the team's list and sampling
    assert _statuses(odd, _messages(), {}) == ["miss"]  # other messages: another entry
    assert _upstream_calls(emulator) == 4


def test_another_organizations_key_never_shares_an_ignored_params_entry(  # type: ignore[no-untyped-def]
    emulated_model, cache_turned_on, make_key, live_ogem
) -> None:
    cache_turned_on(ignore_params=("temperature",))
    emulator = emulated_model()
    first, other = _client(live_ogem, make_key()), _client(live_ogem, make_key())
    messages = _messages()
    assert _statuses(first, messages, {"temperature": 0.1}, {"temperature": 0.5}) == [
        "miss",
        "hit",
    ]
    assert _statuses(other, messages, {"temperature": 0.1}) == ["miss"]
    assert _upstream_calls(emulator) == 2
