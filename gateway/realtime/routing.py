"""WebSocket routes served by Channels (the Realtime API lands here)."""

websocket_urlpatterns: list = []
