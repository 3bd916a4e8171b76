#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")
    from django.core.management import execute_from_command_line

    from ogem_site.env import ConfigurationError

    try:
        execute_from_command_line(sys.argv)
    except ConfigurationError as exc:
        # The environment is wrong, not the code: the message says what to fix, no traceback.
        print(exc, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
