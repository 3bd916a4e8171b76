"""Every process `manage.py serve` starts dies with it, however deep in the tree.

Linux's parent-death signal reaches only a process's own children: serve sets it on the servers
it spawns, and each process further down (a granian or uvicorn worker, a Celery pool process)
sets it again on itself when it starts (`supervised_process_init`), so a SIGKILL of serve takes
the whole tree down link by link and no orphan keeps answering on the port.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

# Set by serve in its children's environment: its pid.
SUPERVISOR_ENV = "OGEM_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def parent_death_signal_set() -> None:
    """SIGKILL this process when the thread that started it dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def supervised_process_init() -> None:
    """In a process started under serve: die with its parent from now on, and at once when the
    supervisor is already gone (it died before the signal was armed)."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit() or int(supervisor) == os.getpid():
        return
    parent_death_signal_set()
    try:
        os.kill(int(supervisor), 0)
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass  # a process of another user holds the pid: not ours to judge
