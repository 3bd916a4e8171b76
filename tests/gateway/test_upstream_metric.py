"""ogem_upstream_duration_seconds{provider,outcome}: recorded by the /v1 pipeline where each
upstream call ends (a response read; a stream finished or failed), scraped from the live server's
/metrics after real calls to the OpenAI emulator."""

from __future__ import annotations

import openai
import pytest

from providers.base import Timeouts
from tests.site.test_metrics import _scrape

pytestmark = pytest.mark.live

Sample = tuple[str, tuple[tuple[str, str], ...]]


def _key(suffix: str, outcome: str) -> Sample:
    return (
        f"ogem_upstream_duration_seconds_{suffix}",
        (("outcome", outcome), ("provider", "openai")),
    )


@pytest.fixture
def emulated(emulated_model):  # type: ignore[no-untyped-def]
    """Model `emulated` on the OpenAI emulator; it gives up on a first byte after 0.5 s."""
    return emulated_model(timeouts=Timeouts(connect=2, first_byte=0.5, total=10))


def test_upstream_calls_are_timed_by_outcome(live_ogem, sdk: openai.OpenAI, emulated) -> None:  # type: ignore[no-untyped-def]
    before = _scrape(live_ogem.url)
    messages = [{"role": "user", "content": "hello"}]

    emulated.inject(first_byte_delay=0.3)
    answer = sdk.chat.completions.create(model="emulated", messages=messages)
    assert answer.choices[0].message.content

    emulated.inject(chunk_delay=0.1)
    chunks = list(sdk.chat.completions.create(model="emulated", messages=messages, stream=True))
    assert len(chunks) > 3

    emulated.inject(status=400)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="emulated", messages=messages)

    emulated.inject(first_byte_delay=2.0)
    with pytest.raises(openai.APIStatusError) as timed_out:
        sdk.chat.completions.create(model="emulated", messages=messages)
    assert timed_out.value.status_code == 504

    after = _scrape(live_ogem.url)

    def delta(sample: Sample) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    # One call each: the answer and the stream succeeded, one was refused, one timed out.
    assert delta(_key("count", "ok")) == 2
    assert delta(_key("count", "error")) == 1
    assert delta(_key("count", "timeout")) == 1
    # The answer waited 0.3 s for its first byte; the stream waited 0.1 s between its chunks
    # (timed until it finished, not only until it opened).
    waited = 0.3 + 0.1 * (len(chunks) - 1)
    assert waited <= delta(_key("sum", "ok")) < waited + 2.0
    assert 0.5 <= delta(_key("sum", "timeout")) < 2.0
