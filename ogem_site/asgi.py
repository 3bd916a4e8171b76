"""ASGI entry point: HTTP goes to Django, WebSocket to Channels.

HTTP passes through pure ASGI wrappers first, outermost first: metrics (`/metrics`, request
timing), health (`/health/live`, `/health/ready`) and static files (`/static/`, for the admin and
portal), so none of them pays for Django's middleware and none of them slows the /v1 path beyond a
prefix comparison.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from gateway.asgi import V1Split  # noqa: E402
from gateway.realtime.routing import websocket_urlpatterns  # noqa: E402
from ogem_site.health import HealthASGI  # noqa: E402
from ogem_site.metrics import MetricsASGI  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": MetricsASGI(HealthASGI(V1Split(ASGIStaticFilesHandler(django_http)))),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# Everything imported so far lives as long as the process: keep it out of the GC's generations.
gc.freeze()
