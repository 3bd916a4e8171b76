"""ASGI entry point: HTTP goes to Django, WebSocket to Channels.

HTTP passes through pure ASGI wrappers first, outermost first: `Connection: close` while serve
drains (only under serve, docs/deploy.md "Rolling deploys"), metrics (`/metrics`, request
timing), health (`/health/live`, `/health/ready`), CORS on /v1 (only when OGEM_CORS_ORIGINS is
set) and static files (`/static/`, for the admin and portal), so none of them pays for Django's
middleware and none of them slows the /v1 path beyond a prefix comparison.
"""

import gc
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")

from ogem_site.supervision import supervised_process_init

# A server's worker process started under `manage.py serve` dies with it (a SIGKILLed serve must
# not leave a worker answering on the port).
supervised_process_init()

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from collections.abc import Iterable  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from gateway.asgi import V1Split  # noqa: E402
from gateway.cors import cors_wrap  # noqa: E402
from gateway.metrics import (  # noqa: E402
    celery_render,
    deployments_health_render,
    usage_streams_render,
)
from gateway.realtime.routing import websocket_urlpatterns  # noqa: E402
from ogem_site.asgi_types import ASGIApp  # noqa: E402
from ogem_site.health import HealthASGI  # noqa: E402
from ogem_site.metrics import MetricsASGI  # noqa: E402
from ogem_site.portal.consumers import PortalLiveConsumer  # noqa: E402
from ogem_site.supervision import connection_close_wrap  # noqa: E402


def http_application(*, cors_origins: Iterable[str]) -> ASGIApp:
    return connection_close_wrap(
        MetricsASGI(
            HealthASGI(
                cors_wrap(V1Split(ASGIStaticFilesHandler(django_http)), origins=cors_origins)
            ),
            scraped=[usage_streams_render, deployments_health_render, celery_render],
            token=settings.OGEM_METRICS_TOKEN,
        )
    )


application = ProtocolTypeRouter(
    {
        "http": http_application(cors_origins=settings.OGEM_CORS_ORIGINS),
        "websocket": URLRouter(
            [
                # The portal's live updates: its session cookie, from its own origin only.
                path(
                    "portal/ws/live",
                    AllowedHostsOriginValidator(
                        AuthMiddlewareStack(PortalLiveConsumer.as_asgi())  # type: ignore[no-untyped-call]
                    ),
                ),
                *websocket_urlpatterns,
            ]
        ),
    }
)

# What the first /v1 request would import (the URLconf and its views, the provider adapters with
# their HTTP, AWS and Redis clients, governance, the pipelined Redis connection: about 400
# modules, 36,000 objects), imported here so that it is frozen below with the rest instead of
# being walked by every full collection, and so that the first request does not pay for it.
import gateway.accounting  # noqa: E402
import gateway.relay  # noqa: E402, F401
import ogem_site.urls  # noqa: E402, F401
import providers.registry  # noqa: E402, F401

# Everything imported so far lives as long as the process: keep it out of the GC's generations.
gc.freeze()
# A full collection walks every live object: with 2,000 open streams, 70-260 ms on this hardware
# (bench --slow-streams), and with the default thresholds (700, 10, 10) a growing heap triggers
# one after another. Young collections a little rarer and full ones ten times rarer remove those
# stalls (docs/benchmark.md); OGEM_GC_THRESHOLDS="g0,g1,g2" overrides.
GC_THRESHOLDS = tuple(
    int(part) for part in os.environ.get("OGEM_GC_THRESHOLDS", "2000,10,100").split(",")
)
gc.set_threshold(*GC_THRESHOLDS)
# The event loop shares the GIL with granian's threads and the background refresh threads
# (configuration, budget snapshots, price overrides, the database pool). A thread that wants the
# GIL waits this long before forcing a switch (default 5 ms): 1 ms bounds how long a request can
# sit behind Python work in another thread.
sys.setswitchinterval(0.001)
