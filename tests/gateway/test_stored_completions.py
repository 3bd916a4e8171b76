"""Stored chat completions (`store: true`) through the live server and the official SDK, on the
mock provider: create, retrieve, update, delete, list, messages, bounds, tenant isolation."""

from __future__ import annotations

import httpx
import openai
import pytest
from django.test import Client
from django.urls import reverse

from gateway.models import StoredCompletion
from keys.services import key_create
from tenants.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.gateway.test_auth import queries_by_server  # noqa: F401 - a fixture
from tests.live import LiveServer, broadcast_listening
from tests.schemas import schema_validate

HELLO = [{"role": "user", "content": "Hello, world!"}]


def _sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _error(raised: pytest.ExceptionInfo[openai.APIStatusError]) -> dict:
    return raised.value.response.json()["error"]


def test_store_true_is_retrieved_as_answered(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="mock-chat", messages=HELLO, store=True, metadata={"topic": "greeting"}
    )
    answered = raw.parse()
    assert answered.id.startswith("chatcmpl-") and len(answered.id) == len("chatcmpl-") + 32
    body = client.chat.completions.with_raw_response.retrieve(answered.id).http_response.json()
    schema_validate("CreateChatCompletionResponse", body)
    assert body["id"] == answered.id
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-chat"
    assert body["created"] == answered.created
    assert body["metadata"] == {"topic": "greeting"}
    assert body["choices"][0]["message"]["content"] == "Mock reply to: Hello, world!"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}


def test_stream_is_stored_whole_under_the_chunks_id(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mock-chat",
            messages=HELLO,
            stream=True,
            store=True,
            stream_options={"include_usage": True},
            metadata={"mode": "stream"},
        )
    )
    ids = {chunk.id for chunk in chunks}
    assert len(ids) == 1
    (completion_id,) = ids
    stored = client.chat.completions.retrieve(completion_id)
    assert stored.choices[0].message.content == "Mock reply to: Hello, world!"
    assert stored.choices[0].message.role == "assistant"
    assert stored.choices[0].finish_reason == "stop"
    assert stored.usage is not None and stored.usage.total_tokens == 12
    assert stored.metadata == {"mode": "stream"}
    assert stored.created == chunks[0].created


def test_without_store_nothing_is_kept_and_the_upstream_id_stays(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="mock-chat", messages=HELLO)
    unstored = client.chat.completions.create(model="mock-chat", messages=HELLO, store=False)
    assert plain.id.startswith("chatcmpl-mock") and unstored.id.startswith("chatcmpl-mock")
    assert client.chat.completions.list().data == []
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(plain.id)


def test_store_and_its_metadata_are_not_sent_upstream(live_ogem, master_key, emulated_model):  # type: ignore[no-untyped-def]
    emulator = emulated_model()
    sdk = _sdk(live_ogem, master_key)
    sdk.chat.completions.create(
        model="emulated", messages=HELLO, store=True, metadata={"topic": "private"}
    )
    sent = emulator.last.json
    assert "store" not in sent and "metadata" not in sent
    assert sent["messages"] == HELLO
    assert sdk.chat.completions.list(model="emulated").data[0].metadata == {"topic": "private"}


def test_update_replaces_metadata_only(client: openai.OpenAI, live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    created = client.chat.completions.create(
        model="mock-chat", messages=HELLO, store=True, metadata={"a": "1"}
    )
    updated = client.chat.completions.update(created.id, metadata={"b": "2"})
    assert updated.id == created.id and updated.metadata == {"b": "2"}
    assert client.chat.completions.retrieve(created.id).metadata == {"b": "2"}
    refused = httpx.post(
        f"{live_ogem.url}/v1/chat/completions/{created.id}",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"metadata": {}, "model": "other"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.update(created.id, metadata={f"k{i}": "v" for i in range(17)})
    assert _error(too_many)["param"] == "metadata"
    assert client.chat.completions.retrieve(created.id).metadata == {"b": "2"}


def test_delete_then_not_found(client: openai.OpenAI) -> None:
    created = client.chat.completions.create(model="mock-chat", messages=HELLO, store=True)
    raw = client.chat.completions.with_raw_response.delete(created.id)
    body = raw.http_response.json()
    schema_validate("ChatCompletionDeleted", body)
    assert body == {"object": "chat.completion.deleted", "id": created.id, "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.retrieve(created.id)
    assert _error(missing)["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.delete(created.id)


def test_list_filters_orders_and_pages(client: openai.OpenAI) -> None:
    ids = []
    for number in range(5):
        created = client.chat.completions.create(
            model="mock-chat",
            messages=[{"role": "user", "content": f"Question {number}"}],
            store=True,
            metadata={"parity": "even" if number % 2 == 0 else "odd", "n": str(number)},
        )
        ids.append(created.id)
    raw = client.chat.completions.with_raw_response.list(limit=2)
    body = raw.http_response.json()
    schema_validate("ChatCompletionList", body)
    assert [c["id"] for c in body["data"]] == ids[:2]
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[1], True)
    # The SDK follows `after` = last_id until has_more is false.
    assert [c.id for c in client.chat.completions.list(limit=2)] == ids
    descending = client.chat.completions.list(order="desc", limit=3)
    assert [c.id for c in descending.data] == ids[:-4:-1] and descending.has_more
    after = client.chat.completions.list(order="desc", after=ids[2])
    assert [c.id for c in after.data] == [ids[1], ids[0]] and not after.has_more
    even = client.chat.completions.list(metadata={"parity": "even"})
    assert [c.id for c in even.data] == [ids[0], ids[2], ids[4]]
    both = client.chat.completions.list(metadata={"parity": "odd", "n": "3"})
    assert [c.id for c in both.data] == [ids[3]]
    assert client.chat.completions.list(model="mock-chat", limit=100).data[4].id == ids[4]
    assert client.chat.completions.list(model="other-model").data == []
    with pytest.raises(openai.BadRequestError) as bad_limit:
        client.chat.completions.list(limit=101)
    assert _error(bad_limit)["param"] == "limit"
    with pytest.raises(openai.BadRequestError) as bad_order:
        client.chat.completions.list(order="sideways")  # type: ignore[arg-type]
    assert _error(bad_order)["param"] == "order"


def test_messages_list_pages_the_request_messages(client: openai.OpenAI) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]
    created = client.chat.completions.create(
        model="mock-chat",
        messages=conversation,  # type: ignore[arg-type]
        store=True,
    )
    listed = client.chat.completions.messages.list(created.id)
    assert [m.id for m in listed.data] == [f"{created.id}-{i}" for i in range(4)]
    assert [m.content for m in listed.data] == ["Be brief.", "Hi", "Hello.", "How are you?"]
    assert listed.data[1].content_parts is not None
    assert listed.data[1].content_parts[0].text == "Hi"
    assert listed.data[0].content_parts is None
    # The page holding the assistant's message is what OpenAI's schema describes (role
    # `assistant` only), validated whole.
    raw = client.chat.completions.messages.with_raw_response.list(
        created.id, after=f"{created.id}-1", limit=1
    )
    page = raw.http_response.json()
    schema_validate("ChatCompletionMessageList", page)
    assert page["data"][0]["id"] == f"{created.id}-2" and page["has_more"] is True
    descending = client.chat.completions.messages.list(created.id, order="desc", limit=2)
    assert [m.content for m in descending.data] == ["How are you?", "Hello."]
    assert [m.id for m in client.chat.completions.messages.list(created.id, limit=1)] == [
        f"{created.id}-{i}" for i in range(4)
    ]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.messages.list("chatcmpl-missing")


@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "metadata"),
        ({"long": "v" * 513}, "metadata.long"),
        ({"number": 5}, "metadata.number"),
    ],
)
def test_metadata_beyond_openais_bounds_is_refused(
    client: openai.OpenAI, metadata: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="mock-chat",
            messages=HELLO,
            store=True,
            metadata=metadata,  # type: ignore[arg-type]
        )
    assert _error(refused)["type"] == "invalid_request_error"
    assert _error(refused)["param"] == param
    assert client.chat.completions.list().data == []


def test_bounds_are_openais_exactly(client: openai.OpenAI) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    created = client.chat.completions.create(
        model="mock-chat", messages=HELLO, store=True, metadata=metadata
    )
    assert client.chat.completions.retrieve(created.id).metadata == metadata


def test_store_must_be_a_boolean(live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    refused = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "mock-chat", "messages": HELLO, "store": "yes"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "store"


def test_tenants_see_only_their_own(live_ogem: LiveServer, master_key: str) -> None:
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    team_a1, team_a2 = TeamFactory(organization=org_a), TeamFactory(organization=org_a)
    team_b = TeamFactory(organization=org_b)
    own = _sdk(live_ogem, key_create(name="a1", team=team_a1).secret)
    teammate = _sdk(live_ogem, key_create(name="a1-bis", team=team_a1).secret)
    other_team = _sdk(live_ogem, key_create(name="a2", team=team_a2).secret)
    other_org = _sdk(live_ogem, key_create(name="b", team=team_b).secret)
    org_wide_a = _sdk(live_ogem, key_create(name="org-a", organization=org_a).secret)
    org_wide_b = _sdk(live_ogem, key_create(name="org-b", organization=org_b).secret)
    master = _sdk(live_ogem, master_key)

    created = own.chat.completions.create(model="mock-chat", messages=HELLO, store=True)
    elsewhere = other_team.chat.completions.create(model="mock-chat", messages=HELLO, store=True)

    for outsider in (other_team, other_org, org_wide_b):
        for call in (
            lambda c: c.chat.completions.retrieve(created.id),
            lambda c: c.chat.completions.update(created.id, metadata={"x": "y"}),
            lambda c: c.chat.completions.delete(created.id),
            lambda c: c.chat.completions.messages.list(created.id),
        ):
            with pytest.raises(openai.NotFoundError) as hidden:
                call(outsider)
            assert _error(hidden)["type"] == "not_found_error"
        assert created.id not in [c.id for c in outsider.chat.completions.list()]
    with pytest.raises(openai.BadRequestError):  # another tenant's id is no cursor either
        other_org.chat.completions.list(after=created.id)

    assert [c.id for c in teammate.chat.completions.list()] == [created.id]
    assert [c.id for c in other_team.chat.completions.list()] == [elsewhere.id]
    assert [c.id for c in org_wide_a.chat.completions.list()] == [created.id, elsewhere.id]
    assert org_wide_b.chat.completions.list().data == []
    assert [c.id for c in master.chat.completions.list()] == [created.id, elsewhere.id]
    assert teammate.chat.completions.retrieve(created.id).metadata == {}
    assert StoredCompletion.objects.get(completion_id=created.id).metadata == {}


def test_deleting_a_team_takes_its_completions_a_key_does_not(
    live_ogem: LiveServer, client: openai.OpenAI
) -> None:
    team = TeamFactory()
    issued = key_create(name="k", team=team)
    sdk = _sdk(live_ogem, issued.secret)
    created = sdk.chat.completions.create(model="mock-chat", messages=HELLO, store=True)
    sdk.chat.completions.list()  # the write has landed
    issued.key.delete()
    kept = StoredCompletion.objects.get(completion_id=created.id)
    assert (kept.key_id, kept.team_id) == (None, team.pk)
    assert client.chat.completions.retrieve(created.id).id == created.id
    team.delete()
    assert not StoredCompletion.objects.filter(completion_id=created.id).exists()


def test_admin_lists_them_read_only(client: openai.OpenAI, admin_client: Client) -> None:
    created = client.chat.completions.create(model="mock-chat", messages=HELLO, store=True)
    client.chat.completions.retrieve(created.id)
    stored = StoredCompletion.objects.get(completion_id=created.id)
    changelist = admin_client.get(reverse("admin:gateway_storedcompletion_changelist"))
    assert changelist.status_code == 200 and created.id.encode() in changelist.content
    assert admin_client.get(reverse("admin:gateway_storedcompletion_add")).status_code == 403
    change = admin_client.get(reverse("admin:gateway_storedcompletion_change", args=[stored.pk]))
    assert change.status_code == 200 and b'name="metadata"' not in change.content
    delete = admin_client.post(
        reverse("admin:gateway_storedcompletion_delete", args=[stored.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    # Tenants' conversations: not even their organization's owner reads them in admin.
    owner = UserFactory()
    MembershipFactory(user=owner, organization=OrganizationFactory(), role=Role.ORG_OWNER)
    owners = Client()
    owners.force_login(owner)
    assert owners.get(reverse("admin:gateway_storedcompletion_changelist")).status_code == 302


def test_nul_characters_are_refused_not_a_server_error(live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {master_key}"}
    url = f"{live_ogem.url}/v1/chat/completions"
    assert httpx.get(f"{url}/chatcmpl-%00", headers=headers).status_code == 404
    listed = httpx.get(url, headers=headers, params={"metadata[a]": "\x00"})
    assert listed.status_code == 400
    stored = httpx.post(
        url,
        headers=headers,
        json={
            "model": "mock-chat",
            "messages": [{"role": "user", "content": "a\x00b"}],
            "store": True,
        },
    )
    assert stored.status_code == 400 and stored.json()["error"]["param"] == "messages"
    unstored = httpx.post(
        url,
        headers=headers,
        json={"model": "mock-chat", "messages": HELLO, "store": True, "metadata": {"a": "\x00"}},
    )
    assert unstored.status_code == 400 and unstored.json()["error"]["param"] == "metadata"


def test_only_a_stored_request_touches_the_database(
    live_ogem: LiveServer,
    make_key,  # type: ignore[no-untyped-def]
    queries_by_server,  # noqa: F811
    settings,
) -> None:
    sdk = _sdk(live_ogem, make_key())
    # Warming up reads the key (and starts the invalidation listener, which begins with an
    # empty cache): once it listens, the next request fills the cache for good.
    sdk.chat.completions.create(model="mock-chat", messages=HELLO)
    if settings.REDIS_URL:
        broadcast_listening()
    sdk.chat.completions.create(model="mock-chat", messages=HELLO)
    queries_by_server.clear()
    sdk.chat.completions.create(model="mock-chat", messages=HELLO, store=False)
    list(sdk.chat.completions.create(model="mock-chat", messages=HELLO, stream=True))
    assert queries_by_server == []
    created = sdk.chat.completions.create(model="mock-chat", messages=HELLO, store=True)
    assert sdk.chat.completions.retrieve(created.id).id == created.id
    inserts = [sql for sql in queries_by_server if sql.startswith("INSERT")]
    assert len(inserts) == 1 and "gateway_storedcompletion" in inserts[0]
