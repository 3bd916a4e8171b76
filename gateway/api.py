"""The OpenAI-compatible /v1 API (Django Ninja, async)."""

from ninja import NinjaAPI

api = NinjaAPI(title="Ogem", version="1", urls_namespace="v1", docs_url=None)
