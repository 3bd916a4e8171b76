"""ASGI entry point: HTTP goes to Django (behind the health wrapper), WebSocket to Channels."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gateway.realtime.routing import websocket_urlpatterns  # noqa: E402
from ogem_site.health import HealthASGI  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": HealthASGI(django_http),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# Everything imported so far lives as long as the process: keep it out of the GC's generations.
gc.freeze()
