"""schemathesis over the Assistants routes of /v1/openapi.json with the `OpenAI-Beta` header
and real ids in their paths: no operation answers a 5xx, whatever the body's fields hold."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.fuzz import server_errors
from tests.live import LiveServer

pytestmark = pytest.mark.live

EXAMPLES = 5
ANY: dict[str, Any] = {}
ASSISTANT = [
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
]
RUN = [
    "assistant_id",
    "model",
    "instructions",
    "additional_instructions",
    "additional_messages",
    "tools",
    "metadata",
    "temperature",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
]
BODIES = {
    "/v1/assistants": ASSISTANT,
    "/v1/assistants/{assistant_id}": ASSISTANT,
    "/v1/threads": ["messages", "tool_resources", "metadata"],
    "/v1/threads/{thread_id}": ["tool_resources", "metadata"],
    "/v1/threads/runs": [*RUN, "thread", "tool_resources"],
    "/v1/threads/{thread_id}/messages": ["role", "content", "attachments", "metadata"],
    "/v1/threads/{thread_id}/messages/{message_id}": ["metadata"],
    "/v1/threads/{thread_id}/runs": RUN,
    "/v1/threads/{thread_id}/runs/{run_id}": ["metadata"],
    "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": ["tool_outputs"],
}


def test_assistants_routes_answer_no_server_error(
    live_ogem: LiveServer, sdk: openai.OpenAI, master_key: str
) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message = sdk.beta.threads.messages.list(thread_id=thread.id).data[0]
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    step = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    document = httpx.get(f"{live_ogem.url}/v1/openapi.json").json()
    document["paths"] = {
        path: item
        for path, item in document["paths"].items()
        if path.startswith(("/v1/assistants", "/v1/threads"))
    }
    assert len(document["paths"]) == 13
    for path, fields in BODIES.items():
        post = document["paths"][path].get("post")
        if post is not None and "requestBody" in post:
            for media in post["requestBody"]["content"].values():
                media["schema"] = {"type": "object", "properties": dict.fromkeys(fields, ANY)}
    ids = {
        "path.assistant_id": assistant.id,
        "path.thread_id": thread.id,
        "path.message_id": message.id,
        "path.run_id": run.id,
        "path.step_id": step.id,
    }
    failures = server_errors(
        document=document,
        base_url=live_ogem.url,
        headers={"Authorization": f"Bearer {master_key}", "OpenAI-Beta": "assistants=v2"},
        max_examples=EXAMPLES,
        operations=[{"include-path-regex": "^/v1/", "parameters": ids}],
    )
    assert failures == []
