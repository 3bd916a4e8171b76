"""A Realtime response's usage (`response.done`'s `response.usage`) as the gateway's Usage.

OpenAI's shape: `input_tokens`, `output_tokens`, `total_tokens`, `input_token_details`
(`text_tokens`, `audio_tokens`, `image_tokens`, `cached_tokens`, `cached_tokens_details` with
its own `text_tokens`/`audio_tokens`/`image_tokens`) and `output_token_details` (`text_tokens`,
`audio_tokens`). Audio and cached tokens are kept apart so that billing prices them apart.
"""

from __future__ import annotations

from typing import Any

from gateway.context import Usage

# Bytes of decoded input audio per token, at the densest format the API takes (G.711 at 8 kHz:
# 8,000 bytes a second; a token is 100 ms of audio): a bound, never below the real count.
AUDIO_BYTES_PER_TOKEN = 800


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _details(block: dict[str, Any], name: str) -> dict[str, Any]:
    value = block.get(name)
    return value if isinstance(value, dict) else {}


def usage_from_realtime(usage: dict[str, Any], *, into: Usage) -> None:
    inputs = _count(usage.get("input_tokens"))
    outputs = _count(usage.get("output_tokens"))
    in_details = _details(usage, "input_token_details")
    out_details = _details(usage, "output_token_details")
    into.prompt_tokens = inputs
    into.completion_tokens = outputs
    into.total_tokens = _count(usage.get("total_tokens")) or inputs + outputs
    into.cached_tokens = min(_count(in_details.get("cached_tokens")), inputs)
    into.audio_prompt_tokens = min(_count(in_details.get("audio_tokens")), inputs)
    cached_details = _details(in_details, "cached_tokens_details")
    into.audio_cached_tokens = min(_count(cached_details.get("audio_tokens")), into.cached_tokens)
    into.audio_completion_tokens = min(_count(out_details.get("audio_tokens")), outputs)
    into.prompt_reported = into.completion_reported = True
    into.estimated = False


def usage_estimate(*, into: Usage, prompt_tokens: int, text_bytes: int, audio_chars: int) -> None:
    """What a response that ended without `response.done` (its upstream gone) is recorded as:
    its prompt bound, and about a token per 4 bytes of text and per 100 ms of audio relayed."""
    into.prompt_tokens = prompt_tokens
    audio = (audio_chars * 3 // 4) // 4800  # PCM16 at 24 kHz, the default output format
    into.audio_completion_tokens = audio
    into.completion_tokens = -(-text_bytes // 4) + audio
    into.total_tokens = into.prompt_tokens + into.completion_tokens
    into.estimated = True
