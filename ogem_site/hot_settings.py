"""The settings object itself, for code that reads settings on every /v1 request.

`django.conf.settings` is a lazy proxy whose `__getattribute__` is Python (Django 4.1 and
later): every read of it runs a frame and a `super()`, about 2,000 instructions, and a response
cache hit made some thirty of them (docs/benchmark.md). The object it wraps is a plain one,
whose attributes are read in C. Reading through it gives what `settings` gives (except the
script prefix that `settings.STATIC_URL` and `MEDIA_URL` add): `override_settings` and
pytest-django's `settings` fixture swap the wrapped object, and `settings.NAME = value` lands on
it.

`hot_settings().NAME`, in code that runs once Django is set up (a request, a task): before the
first read of a setting the proxy wraps nothing yet. A C call, not a function of ours, since a
Python frame would cost half of what it saves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings

hot_settings: Callable[[], Any] = functools.partial(object.__getattribute__, settings, "_wrapped")
