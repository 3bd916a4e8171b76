"""The models the `local` provider runs in-process, and the one copy of each per process.

`wordllama-l2-supercat` is WordLlama's `l2_supercat` (token embeddings taken from Llama 2 70B's
input layer and trained for sentence similarity): a 32,000 x 256 matrix (float16 on disk, 32 MB
as float32 in memory) and Llama 2's tokenizer, both inside the `wordllama` wheel, so loading
it needs no network and no download cache. A text's embedding is the mean of its tokens' rows
(no transformer, no GPU): microseconds per text on one CPU core. Its dimensions are
matryoshka-trained, so the first 64 or 128 of the 256 are an embedding too
(docs/providers.md#local-offline-embeddings).

`wordllama` and numpy are imported on the first embedding, never at start-up, so a worker that
never embeds pays nothing for them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# WordLlama's own configuration name for each model Ogem serves, and the widths its shipped
# weights allow (its matryoshka widths up to the 256 that the wheel ships).
WORDLLAMA_MODELS: dict[str, str] = {"wordllama-l2-supercat": "l2_supercat"}
SHIPPED_DIMENSIONS = 256
ALLOWED_DIMENSIONS: tuple[int, ...] = (64, 128, 256)


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A loaded model: its tokenizer (read-only after loading, so shared by threads) and its
    token embedding matrix (never written)."""

    tokenizer: Any  # tokenizers.Tokenizer
    weights: Any  # numpy.ndarray, (vocabulary, SHIPPED_DIMENSIONS) float32

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def vectors(self, ids: list[list[int]], *, dimensions: int) -> Any:
        """L2-normalised mean token embeddings, (len(ids), dimensions) float32."""
        import numpy as np

        # Truncate before averaging: the mean is linear, so this equals truncating the full
        # mean, and gathers a quarter of the bytes at 64 dimensions.
        table = self.weights[:, :dimensions]
        out = np.empty((len(ids), dimensions), dtype=np.float32)
        for row, token_ids in enumerate(ids):
            out[row] = table[np.asarray(token_ids, dtype=np.int64)].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


_models: dict[str, LocalModel] = {}
_load_lock = threading.Lock()


def local_model_get(name: str) -> LocalModel:
    """The process's one copy of model `name` (a key of WORDLLAMA_MODELS), loaded on first use.
    Blocking (about half a second the first time): call it off the event loop."""
    model = _models.get(name)
    if model is not None:
        return model
    with _load_lock:
        model = _models.get(name)
        if model is None:
            model = _models[name] = _wordllama_load(WORDLLAMA_MODELS[name])
    return model


def _wordllama_load(config: str) -> LocalModel:
    import numpy as np

    wordllama = _wordllama_import()
    package = Path(wordllama.__file__).parent
    # The wheel keeps its tokenizer under `tokenizers/`, where WordLlama looks only inside its
    # cache directory: pointing the cache at the package finds both files, and with downloads
    # disabled a missing file is an error rather than a request to Hugging Face.
    inference = wordllama.WordLlama.load(
        config=config, dim=SHIPPED_DIMENSIONS, cache_dir=package, disable_download=True
    )
    tokenizer = inference.tokenizer
    # WordLlama pads a batch to its longest text; Ogem averages each text's own tokens.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    weights = np.ascontiguousarray(inference.embedding, dtype=np.float32)
    weights.setflags(write=False)
    return LocalModel(tokenizer=tokenizer, weights=weights)


def _wordllama_import() -> Any:
    """`import wordllama`, minus its side effect: the package calls `logging.basicConfig(INFO)`
    on import, which would add a handler to the root logger of a process that has none."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import wordllama

    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return wordllama
