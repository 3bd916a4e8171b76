"""Test settings: the embedded default, or PostgreSQL and Redis when CI exports their URLs."""

import atexit
import os
import shutil
import tempfile

from ogem_site.env import env_collect_end
from ogem_site.settings.base import *  # noqa: F403
from ogem_site.settings.base import CACHES, REDIS_URL, STORAGES

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

env_collect_end(module=__name__)
