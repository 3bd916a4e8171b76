"""OpenAI's `static` chunking strategy: windows of `max_chunk_size_tokens` tokens, each starting
`max_chunk_size_tokens - chunk_overlap_tokens` tokens after the previous one.

Tokens are counted by the tokenizer of the offline `local` model (Llama 2's, shipped inside the
wordllama wheel), so chunking needs no network; it counts a little more tokens than OpenAI's
o200k for English text, so a chunk holds a little less text than on OpenAI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequestError

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP_TOKENS = 400
MIN_MAX_TOKENS = 100
MAX_MAX_TOKENS = 4096
_TOKENIZER_MODEL = "wordllama-l2-supercat"
_WORD_SLACK = 16  # tokens a window may grow by to keep its words whole


@dataclass(frozen=True, slots=True)
class Chunking:
    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_tokens,
                "chunk_overlap_tokens": self.overlap_tokens,
            },
        }


def chunking_parse(value: object, *, param: str = "chunking_strategy") -> Chunking:
    """A request's `chunking_strategy`: absent or `auto` is the default, `static` as given."""
    if value is None:
        return Chunking()
    if not isinstance(value, dict):
        raise InvalidRequestError(f"`{param}` must be an object.", param=param)
    kind = value.get("type")
    if kind == "auto":
        return Chunking()
    if kind != "static":
        raise InvalidRequestError(f"`{param}.type` must be `auto` or `static`.", param=param)
    static = value.get("static")
    if not isinstance(static, dict):
        raise InvalidRequestError(f"`{param}.static` must be an object.", param=f"{param}.static")
    size = static.get("max_chunk_size_tokens")
    overlap = static.get("chunk_overlap_tokens")
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not MIN_MAX_TOKENS <= size <= MAX_MAX_TOKENS
    ):
        raise InvalidRequestError(
            f"`max_chunk_size_tokens` must be an integer from {MIN_MAX_TOKENS} to "
            f"{MAX_MAX_TOKENS}.",
            param=f"{param}.static.max_chunk_size_tokens",
        )
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= size // 2:
        raise InvalidRequestError(
            "`chunk_overlap_tokens` must be an integer from 0 to half of `max_chunk_size_tokens`.",
            param=f"{param}.static.chunk_overlap_tokens",
        )
    return Chunking(max_tokens=size, overlap_tokens=overlap)


def text_chunks(text: str, *, chunking: Chunking) -> list[str]:
    """The text's chunks, in order; a blank text has none. Blocking (tokenizing)."""
    from providers.local.models import local_model_get

    if not text.strip():
        return []
    tokenizer = local_model_get(_TOKENIZER_MODEL).tokenizer
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    if not offsets:
        return []
    step = chunking.max_tokens - chunking.overlap_tokens
    chunks: list[str] = []
    start = 0
    while True:
        end = min(start + chunking.max_tokens, len(offsets))
        # Whole words: a window that starts or ends inside a word takes in its rest (a few
        # tokens at most), so no chunk begins with half a word.
        first, last = start, end
        while first > max(0, start - _WORD_SLACK) and not _word_starts(text, offsets, first):
            first -= 1
        while last < min(len(offsets), end + _WORD_SLACK) and not _word_starts(text, offsets, last):
            last += 1
        piece = text[offsets[first][0] : offsets[last - 1][1]].strip()
        if piece:
            chunks.append(piece)
        if end >= len(offsets):
            return chunks
        start += step


def _word_starts(text: str, offsets: list[tuple[int, int]], token: int) -> bool:
    begin = offsets[token][0]
    return begin == 0 or text[begin - 1].isspace() or not text[begin].isalnum()
