"""What a child forked from the test process finds, reported back through a pipe: for the
modules that must not share a parent's pipe, exporter or delivery process after a fork."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_forked_child(check: Callable[[], bool]) -> bool:
    """`check()` in a child forked from this process (which waits for it)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, b"1" if check() else b"0")
        finally:
            os._exit(0)  # never back into the test run
    os.close(write)
    try:
        return os.read(read, 1) == b"1"
    finally:
        os.waitpid(child, 0)
        os.close(read)
