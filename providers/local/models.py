"""The models the `local` provider runs in-process, and the one copy of each per process.

`wordllama-l2-supercat` is WordLlama's `l2_supercat` (token embeddings taken from Llama 2 70B's
input layer and trained for sentence similarity): a 32,000 x 256 matrix (float16 on disk, 32 MB
as float32 in memory) and Llama 2's tokenizer, both inside the `wordllama` wheel, so loading
it needs no network and no download cache. A text's embedding is the mean of its tokens' rows
(no transformer, no GPU): microseconds per text on one CPU core. Its dimensions are
matryoshka-trained, so the first 64 or 128 of the 256 are an embedding too
(docs/providers.md#local-offline-embeddings).

The model and the libraries that run it (numpy, tokenizers, safetensors) are loaded on the first
embedding, never at start-up, so a worker that never embeds pays nothing for them.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.errors import UpstreamUnavailableError

logger = logging.getLogger(__name__)

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
            try:
                model = _wordllama_load(WORDLLAMA_MODELS[name])
            except Exception as exc:
                # A broken installation is the operator's to fix: the caller gets a 503 (which
                # the router fails over), the log the cause; the next request tries again.
                logger.exception("the local provider cannot load its model %s", name)
                raise UpstreamUnavailableError(
                    f"The local provider cannot load its model {name} ({type(exc).__name__}).",
                    provider="local",
                ) from exc
            _models[name] = model
    return model


def _wordllama_load(config: str) -> LocalModel:
    """The model's two files, read from the installed `wordllama` package: its weights
    (`weights/<config>_256.safetensors`) and Llama 2's tokenizer
    (`tokenizers/<config>_tokenizer_config.json`); wordllama 0.2.2 and 0.4 ship the same two
    (pyproject.toml says which one a platform gets). Reading them directly needs no network
    (WordLlama's loader would fetch a missing file from Hugging Face) and does not import the
    package, whose import configures the root logger (`logging.basicConfig`)."""
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("wordllama, the package that holds the model, is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = Tokenizer.from_file(str(package / "tokenizers" / f"{config}_tokenizer_config.json"))
    # WordLlama pads a batch to its longest text and never truncates: each text is averaged
    # over its own tokens, all of them (the adapter bounds their number).
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tensors = load_file(str(package / "weights" / f"{config}_{SHIPPED_DIMENSIONS}.safetensors"))
    weights = np.ascontiguousarray(tensors["embedding.weight"], dtype=np.float32)
    weights.setflags(write=False)
    return LocalModel(tokenizer=tokenizer, weights=weights)
