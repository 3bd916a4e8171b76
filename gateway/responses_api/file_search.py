"""The Responses API's hosted `file_search` tool, over chat: the model is offered a function of
that name; when it calls it, Ogem searches the tool's vector stores with the model's queries,
hands the results back to the model, and reports the search as a `file_search_call` item.

Vector stores are an app above the gateway (it may not import them): the app registers its
search here when Django loads it (vector_stores/apps.py). Without it, `file_search` is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

# vector_stores.search.vector_stores_search's signature.
SearchRunner = Callable[..., Awaitable[list[dict[str, Any]]]]
_runner: SearchRunner | None = None

TOOL_NAME = "file_search"
# The function the model sees in place of the hosted tool.
CHAT_FUNCTION = {
    "name": TOOL_NAME,
    "description": (
        "Search the user's uploaded files for passages relevant to the question. Call it with "
        "one or more short search queries; it returns the best matching passages."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Search queries, each a short phrase or question.",
            }
        },
        "required": ["queries"],
        "additionalProperties": False,
    },
}


def file_search_runner_set(runner: SearchRunner | None) -> None:
    global _runner
    _runner = runner


def file_search_runner() -> SearchRunner | None:
    return _runner


def results_for_model(results: list[dict[str, Any]]) -> str:
    """The tool result the model reads: each passage with its file and score."""
    if not results:
        return "No matching passages were found in the files."
    blocks = []
    for number, result in enumerate(results, start=1):
        text = "\n".join(part.get("text", "") for part in result.get("content", []))
        blocks.append(
            f"[{number}] {result.get('filename')} (file {result.get('file_id')}, "
            f"score {result.get('score', 0):.3f})\n{text}"
        )
    return "\n\n".join(blocks)
