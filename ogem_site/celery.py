import os
import sys
from typing import Any

from celery import Celery, Task
from celery.signals import (
    beat_init,
    celeryd_after_setup,
    worker_process_init,
    worker_process_shutdown,
)

from ogem_site.supervision import supervised_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")


class OgemTask(Task):
    """Every Ogem task's base class: a task that raises is counted (ogem_celery_task_failures_total,
    docs/metrics.md). A worker reports it to `on_failure`; a task run eagerly (no Redis: in the
    web process) raises through `__call__` (CELERY_TASK_EAGER_PROPAGATES skips `on_failure`).
    Retries are not failures; a task that exhausts them is."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        eager = self.request.is_eager
        try:
            return super().__call__(*args, **kwargs)
        except Exception:
            if eager:
                _failure_record(self.name)
            raise

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not self.request.is_eager:
            _failure_record(self.name)
        super().on_failure(exc, task_id, args, kwargs, einfo)


def _failure_record(task: str) -> None:
    from ogem_site.metrics import celery_task_failure_record

    celery_task_failure_record(task=task)


app = Celery("ogem", task_cls=OgemTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _pool_process_dies_with_its_worker(**_: object) -> None:
    # Celery arms the parent-death signal in its pool processes too, but does not check whether
    # the worker already died before that (under `serve`, a SIGKILL of serve takes it down).
    supervised_process_init()


@celeryd_after_setup.connect
def _configuration_reported(**_: object) -> None:
    # A worker started on its own (`make worker`) logs the configuration's problems once, before
    # its pool starts; under `serve`, which logged them already, it logs nothing new, and its
    # pool processes load the configuration quietly (gateway/config/report.py). Imported here:
    # this module loads before Django's apps, which gateway's modules need.
    from gateway.config.report import config_report, config_report_log
    from gateway.registry import registry_builtin_names

    config_report_log(config_report(builtin=registry_builtin_names()))
    # Before the pool starts: its processes inherit the priority.
    _cpu_priority_apply()


@beat_init.connect
def _beat_cpu_priority(**_: object) -> None:
    # Beat is Celery's too: at `idle` its ticks (every 2 s, the usage drain's) wait for idle CPU
    # as the worker's tasks do, rather than preempting a web worker on a shared core.
    _cpu_priority_apply()


def _cpu_priority_apply() -> None:
    from django.conf import settings

    from ogem_site.cpu_priority import cpu_priority_apply

    cpu_priority_apply(priority=settings.OGEM_CELERY_CPU_PRIORITY)


@worker_process_shutdown.connect
def _callbacks_delivered(**_: object) -> None:
    # A pool process ends without atexit: deliver the callback events its tasks produced
    # (internal calls: batch lines, assistants' runs), bounded by OGEM_CALLBACKS_FLUSH_SECONDS.
    dispatcher = sys.modules.get("gateway.callbacks.dispatcher")  # loaded when events were
    if dispatcher is not None:
        dispatcher.callbacks_close()
