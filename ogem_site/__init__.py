from ogem_site.supervision import granian_worker_stop_signals_hold

# A granian worker imports the app through this package: hold stop signals from its first line
# until the worker can handle them (ogem_site/supervision.py).
granian_worker_stop_signals_hold()

from ogem_site.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
