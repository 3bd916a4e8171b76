"""WebSocket routes served by Channels: the Realtime API (gateway/realtime/session.py), also at
`/realtime` as LiteLLM serves it; any other WebSocket path is refused with 404."""

from django.urls import path, re_path

from gateway.realtime.session import realtime_asgi, websocket_not_found

websocket_urlpatterns: list = [
    path("v1/realtime", realtime_asgi),
    path("realtime", realtime_asgi),
    re_path(r"", websocket_not_found),
]
