"""Test settings: the embedded default, or PostgreSQL and Redis when CI exports their URLs."""

import os

from ogem_site.env import env_collect_end
from ogem_site.settings.base import *  # noqa: F403
from ogem_site.settings.base import CACHES, REDIS_URL

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

env_collect_end(module=__name__)
