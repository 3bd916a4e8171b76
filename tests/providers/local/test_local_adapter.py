"""The `local` adapter itself: the same vectors as WordLlama's own, nothing loaded at start-up,
and a bounded queue."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from providers.base import Deployment, Endpoint
from providers.errors import NotFoundError, UpstreamUnavailableError
from providers.local import adapter as local_adapter
from providers.local import models as local_models
from providers.local.models import local_model_get
from providers.registry import adapter_get

DEPLOYMENT = Deployment(
    id="t", model_name="e", provider="local", upstream_model="wordllama-l2-supercat"
)
TEXTS = ["What is the capital of France?", "Tell me France's capital city", "hi", " "]


@pytest.mark.parametrize("dimensions", [64, 128, 256])
def test_vectors_are_wordllamas_own(dimensions: int) -> None:
    import wordllama

    reference = wordllama.WordLlama.load(
        cache_dir=Path(wordllama.__file__).parent,
        disable_download=True,
        trunc_dim=None if dimensions == 256 else dimensions,
    ).embed(TEXTS, norm=True)
    model = local_model_get("wordllama-l2-supercat")
    ours = model.vectors(model.token_ids(TEXTS), dimensions=dimensions)
    assert ours.shape == (len(TEXTS), dimensions)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_starting_ogem_loads_no_model() -> None:
    # A worker that never embeds pays nothing: the provider is registered, the model is not
    # imported, nor numpy or tokenizers for it.
    code = (
        "import sys\n"
        "from ogem_site.asgi import application\n"
        "import gateway.relay, providers.registry\n"
        "assert providers.registry.adapter_get('local') is not None\n"
        "print(sorted(m for m in ('wordllama', 'numpy', 'tokenizers') if m in sys.modules))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _call(body: dict, deployment: Deployment = DEPLOYMENT) -> dict:
    adapter = adapter_get("local")
    assert adapter is not None
    return asyncio.run(adapter.call(endpoint=Endpoint.EMBEDDINGS, deployment=deployment, body=body))


def test_a_full_queue_is_a_503_at_once_and_frees_as_work_ends() -> None:
    pool = local_adapter._pool_get()
    taken = 0
    while pool.slots.acquire(blocking=False):
        taken += 1
    try:
        assert taken == local_adapter.LOCAL_QUEUE
        with pytest.raises(UpstreamUnavailableError) as busy:
            _call({"input": "x"})
        assert (busy.value.status, busy.value.code) == (503, "upstream_unavailable")
    finally:
        for _ in range(taken):
            pool.slots.release()
    assert _call({"input": "x"})["usage"]["prompt_tokens"] == 1
    # The slot that call took is back.
    assert pool.slots.acquire(blocking=False)
    pool.slots.release()


def test_an_unknown_model_is_a_404() -> None:
    other = Deployment(id="t", model_name="e", provider="local", upstream_model="nope")
    with pytest.raises(NotFoundError) as missing:
        _call({"input": "x"}, deployment=other)
    assert missing.value.code == "model_not_found"


def test_concurrent_requests_each_get_their_own_answer() -> None:
    adapter = adapter_get("local")
    assert adapter is not None
    bodies = [{"input": [f"request {n}", "shared text " * n or "x"]} for n in range(40)]

    async def run() -> list[dict]:
        return await asyncio.gather(
            *(
                adapter.call(endpoint=Endpoint.EMBEDDINGS, deployment=DEPLOYMENT, body=body)
                for body in bodies
            )
        )

    together = asyncio.run(run())
    for body, answer in zip(bodies, together, strict=True):
        assert answer == _call(body)


def _embed_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(_call({"input": "after the fork"})["usage"]["prompt_tokens"])


def test_a_forked_worker_embeds_with_threads_of_its_own() -> None:
    # A Celery prefork child inherits the parent's pool object but not its threads.
    assert _call({"input": "before the fork"})["usage"]["prompt_tokens"] > 0
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_embed_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=60) == 3  # ▁after ▁the ▁fork
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def test_loading_leaves_the_root_logger_as_it_was() -> None:
    # `import wordllama` calls logging.basicConfig(level=INFO): in a process whose logging is
    # not configured yet, that would print every library's INFO lines to stderr. Ogem reads the
    # model's files without importing the package.
    code = (
        "import logging\n"
        "from providers.local.models import local_model_get\n"
        "local_model_get('wordllama-l2-supercat')\n"
        "root = logging.getLogger()\n"
        "print(root.handlers, logging.getLevelName(root.level))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] WARNING"


def test_a_model_that_cannot_load_is_a_503_and_is_tried_again(monkeypatch, caplog) -> None:
    # As if the installed package lacked the model's files.
    monkeypatch.setattr(local_models, "_models", {})
    monkeypatch.setitem(local_models.WORDLLAMA_MODELS, "wordllama-l2-supercat", "l9_missing")
    with pytest.raises(UpstreamUnavailableError) as broken:
        _call({"input": "x"})
    assert broken.value.status == 503
    assert broken.value.message.startswith(
        "The local provider cannot load its model wordllama-l2-supercat ("
    )
    assert "cannot load its model wordllama-l2-supercat" in caplog.text
    monkeypatch.setitem(local_models.WORDLLAMA_MODELS, "wordllama-l2-supercat", "l2_supercat")
    assert _call({"input": "x"})["usage"]["prompt_tokens"] == 1
