"""What the hostile-input property tests share: a picture of a folder to prove nothing outside was touched,
and a call that must give a value or one LabError line within a time limit."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hypothesis import event

from lab.errors import LabError

TIMEOUT_S = 10
T = TypeVar("T")


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry below ``root``: its mode, modification time and, for a file, its content's digest."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, digest)
    return found


def one_line_or_value(action: Callable[[], T], what: str) -> T | None:
    """What ``action`` gives, or None for a LabError of one line; any other exception, or a wait longer than
    TIMEOUT_S (``what`` blocked), fails the test."""
    def timed_out(*_):
        raise TimeoutError(f"{what} blocked for {TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(TIMEOUT_S)
    try:
        return action()
    except LabError as error:
        assert "\n" not in str(error), str(error)
        event("one line")
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def write_entry(path: Path, kind: str, content: bytes, elsewhere: Path, secret: Path) -> None:
    """Put at ``path`` what a hostile folder may hold: a regular file of ``content``, a link to ``elsewhere``
    (holding ``content``, inside the folder) or to ``secret`` (outside it), a FIFO, or a directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "regular":
        path.write_bytes(content)
    elif kind == "symlink-in":
        elsewhere.write_bytes(content)
        path.symlink_to(elsewhere)
    elif kind == "symlink-out":
        path.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
