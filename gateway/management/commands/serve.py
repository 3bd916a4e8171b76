"""`make run`: migrate, then serve the ASGI app (and Celery when a broker is configured)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate and serve Ogem (ASGI over uvicorn; Celery worker and beat when REDIS_URL is set)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("OGEM_WORKERS", "1"))
        )
        parser.add_argument("--no-migrate", action="store_true")
        parser.add_argument("--no-celery", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        host, port, workers = options["host"], options["port"], options["workers"]
        self.stdout.write(f"Ogem is serving on http://{host}:{port}  ({workers} worker(s))")
        self.stdout.write(f"  master key: from {settings.OGEM_MASTER_KEY_SOURCE}")
        self.stdout.write(f"  database:   {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
        self.stdout.write(f"  cache:      {'redis' if settings.REDIS_URL else 'local memory'}")
        self.stdout.write(f"  admin:      http://{host}:{port}/admin/")
        self.stdout.flush()

        children: list[subprocess.Popen[bytes]] = []
        if settings.REDIS_URL and not options["no_celery"]:
            celery = [sys.executable, "-m", "celery", "-A", "ogem_site"]
            children.append(subprocess.Popen([*celery, "worker", "--loglevel=WARNING"]))  # noqa: S603
            children.append(subprocess.Popen([*celery, "beat", "--loglevel=WARNING"]))  # noqa: S603
        server = [
            sys.executable,
            "-m",
            "uvicorn",
            "ogem_site.asgi:application",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--lifespan",
            "off",
            "--timeout-graceful-shutdown",
            "30",
        ]
        web = subprocess.Popen(server)  # noqa: S603
        try:
            web.wait()
        except KeyboardInterrupt:
            web.send_signal(signal.SIGINT)
            web.wait()
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)
