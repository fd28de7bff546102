"""Shared pieces of the image cache: the lock that keeps two builds of one image from racing."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from lab.errors import LabError

LOCK_WAIT_SECONDS = 45 * 60


@contextmanager
def build_lock(lock_path: Path, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """An exclusive flock: a second build of the same image waits for the first, then finds it cached."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock_file:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"another process has held {lock_path} for over {wait_seconds / 60:.0f} min "
                        f"(pid in the file): wait for it or kill it, then retry"
                    ) from None
                if not announced:
                    Console(stderr=True).print(f"waiting for another build of this image ({lock_path}) ...",
                                               markup=False, highlight=False)
                    announced = True
                time.sleep(1)
        try:
            lock_file.seek(0)
            lock_file.truncate()
            lock_file.write(f"{os.getpid()}\n")
            lock_file.flush()
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
