"""Test settings: the embedded default, or PostgreSQL and Redis when CI exports their URLs."""

import atexit
import os
import shutil
import tempfile

# Parallel test workers (pytest-xdist) share one Redis: each gets a key prefix of its own, under
# which every key, stream, pub/sub channel and Celery queue of Ogem's lies. Set in the environment
# before the settings read it, so that the servers and workers a test starts inherit it.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _XDIST_WORKER and not os.environ.get("OGEM_CACHE_PREFIX", "").endswith(f"-{_XDIST_WORKER}"):
    os.environ["OGEM_CACHE_PREFIX"] = (
        f"{os.environ.get('OGEM_CACHE_PREFIX', 'ogem')}-{_XDIST_WORKER}"
    )

from ogem_site.env import env_collect_end  # noqa: E402
from ogem_site.settings.base import *  # noqa: E402, F403
from ogem_site.settings.base import CACHES, DATABASES, REDIS_URL, STORAGES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
# No configuration watcher behind every test's back; tests/config starts one where it is tested.
OGEM_CONFIG_WATCH = False
# Usage is written when a test calls billing.services.usage_drain, not by a background flush that
# could outlive its test and write into the next one's database.
OGEM_USAGE_AUTOFLUSH = False
if REDIS_URL:
    # One prefix per test process so parallel runs never see each other's keys.
    CACHES["default"]["KEY_PREFIX"] = f"ogem-test-{os.getpid()}"
# Files that tests store (/v1/files, batch results) go to a directory of this test process, removed
# when it exits, never to var/files of the embedded default.
if STORAGES["files"]["BACKEND"].endswith("FileSystemStorage"):
    _FILES_DIR = tempfile.mkdtemp(prefix="ogem-test-files-")
    atexit.register(shutil.rmtree, _FILES_DIR, ignore_errors=True)
    STORAGES["files"] = {**STORAGES["files"], "OPTIONS": {"location": _FILES_DIR}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, as `make run` uses, not Django's shared-cache in-memory database: there, a live
    # server's or background thread's write fails at once with "database table is locked" where
    # the file database waits for the lock. On tmpfs when there is one; pytest-xdist suffixes it
    # per worker.
    _TMPFS = "/dev/shm"  # noqa: S108 (mkdtemp makes a private, randomly named directory there)
    _SQLITE_DIR = tempfile.mkdtemp(
        prefix="ogem-test-db-", dir=_TMPFS if os.path.isdir(_TMPFS) else None
    )
    atexit.register(shutil.rmtree, _SQLITE_DIR, ignore_errors=True)
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_SQLITE_DIR, "ogem.sqlite3")}

# Batch lines never yield the CPU unless a test asks (tests/batches/test_cpu_yield.py): on a
# loaded CI machine they would yield all the time and every batch test would crawl at the pace.
if not os.environ.get("OGEM_BATCH_YIELD_CPU"):
    OGEM_BATCH_YIELD_CPU = 0.0

env_collect_end(module=__name__)
