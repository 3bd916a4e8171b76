"""Conversation turns for the upstreams that want them alternating (Anthropic, Bedrock, Gemini):
OpenAI's consecutive messages of one role become one turn."""

from __future__ import annotations

from typing import Any


def turn_append(
    turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], *, key: str = "content"
) -> None:
    """Add `blocks` as a turn of `role`, merged into the last turn when it has the same role
    (`key`: the turn's list of blocks, Gemini's `parts`). No blocks, no turn."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: list(blocks)})
