"""Weighted shuffle through the live server: 2,000 real requests follow the weights within ±5%."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.routing.conftest import HELLO, served_by

REQUESTS = 2000


async def _burst(url: str, key: str) -> list[int]:
    limit = asyncio.Semaphore(20)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:

        async def one() -> int:
            async with limit:
                response = await client.post(
                    "/v1/chat/completions", json={"model": "group", "messages": HELLO}
                )
                return response.status_code

        return await asyncio.gather(*(one() for _ in range(REQUESTS)))


def test_weighted_shuffle_follows_the_weights_over_2000_live_requests(
    openai_emulator, install_deployments, deployment, live_ogem, master_key
) -> None:
    install_deployments(
        deployment("light", weight=1), deployment("middle", weight=3), deployment("heavy", weight=6)
    )
    statuses = asyncio.run(_burst(live_ogem.url, master_key))
    assert Counter(statuses) == {200: REQUESTS}
    picks = Counter(served_by(openai_emulator))
    assert sum(picks.values()) == REQUESTS
    for name, share in (("light", 0.1), ("middle", 0.3), ("heavy", 0.6)):
        assert abs(picks[name] / REQUESTS - share) <= 0.05, picks
