"""The CPU priority of Celery's processes (OGEM_CELERY_CPU_PRIORITY, docs/batches.md).

`idle` puts every thread of the worker under Linux's SCHED_IDLE policy before its pool starts
(pool processes inherit it), and beat's before it sends its first task (ogem_site/celery.py):
batch lines, indexing, rollups and beat's ticks then run only on CPU time that the web workers
leave unused, so a batch sharing a machine with live traffic takes nothing from /v1
(`python -m bench --batch-during`). SCHED_IDLE is stronger than `nice 19`, which still takes
about 1.5 % of a busy core and wins wake-ups against the web worker. Where the policy does not
exist (not Linux), `idle` falls back to nice 19. An unprivileged process cannot leave SCHED_IDLE
again, so it is set once, for the whole worker, never per task.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def cpu_priority_apply(*, priority: str) -> None:
    """Give this process (each of its threads) the `priority`; `normal` changes nothing."""
    if priority == "normal":
        return
    sched_idle = getattr(os, "SCHED_IDLE", None)
    if sched_idle is None:
        os.nice(19)
        return
    tasks = Path("/proc/self/task")
    threads = [int(tid.name) for tid in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in threads:
        try:
            os.sched_setscheduler(tid, sched_idle, os.sched_param(0))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
        except OSError:
            logger.warning("could not set the idle CPU priority; the worker runs at nice 19")
            os.nice(19)
            return
