import os

from celery import Celery
from celery.signals import worker_process_init

from ogem_site.supervision import supervised_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")

app = Celery("ogem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _pool_process_dies_with_its_worker(**_: object) -> None:
    # Celery arms the parent-death signal in its pool processes too, but does not check whether
    # the worker already died before that (under `serve`, a SIGKILL of serve takes it down).
    supervised_process_init()
