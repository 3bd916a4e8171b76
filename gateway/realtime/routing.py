"""WebSocket routes served by Channels: the Realtime API (gateway/realtime/session.py)."""

from django.urls import path

from gateway.realtime.session import realtime_asgi

websocket_urlpatterns: list = [path("v1/realtime", realtime_asgi)]
