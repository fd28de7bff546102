"""A run folder's files read and written as data: never through a link, never a FIFO or a device, never
more than a few MiB, and a file bst replaces is replaced whole (a hard link's other name keeps its text).

A run folder may come from anywhere (a CI artifact, a colleague's tarball): every file in it is untrusted.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError

MAX_READ_BYTES = 4 * 1024 * 1024
"""The most read of any one file; a longer one is cut there, and the reader says so."""
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


class NotARegularFile(LabError):
    """A run folder's entry that is not read: a symlink, a FIFO, a directory where a file belongs, a device."""


class JsonRefused(ValueError):
    """JSON a run folder must not hold: NaN or Infinity, nesting too deep, an integer too long to convert."""


@dataclass(frozen=True)
class FileText:
    text: str
    cut: bool
    """Only the first ``MAX_READ_BYTES`` were read."""

    @property
    def cut_note(self) -> str:
        return f" (only its first {MAX_READ_BYTES // (1024 * 1024)} MiB were read)" if self.cut else ""


def kind_of(mode: int) -> str:
    """What an lstat mode is, in words."""
    kinds = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _parts(folder: Path, path: Path) -> tuple[str, ...]:
    """``path``'s names below ``folder``; NotARegularFile when it is not below it. Both are paths as given
    (absolute, or relative to the working directory): ``path`` holds ``folder``, it is not joined onto it."""
    try:
        parts = Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).parts
    except ValueError:
        raise NotARegularFile(f"{path} is outside the run folder {folder}; it is not read") from None
    if not parts or ".." in parts:
        raise NotARegularFile(f"{path} is outside the run folder {folder}; it is not read")
    return parts


def _refusal(shown: str, mode: int) -> NotARegularFile:
    return NotARegularFile(f"{shown} is {kind_of(mode)}, not a file; it is not read")


def _open_below(folder: Path, path: Path) -> int:
    """A descriptor of the regular file at ``path`` below ``folder``, reached without following any link:
    each name is looked at (lstat) before it is opened, and opened with O_NOFOLLOW (and O_NONBLOCK, so a
    FIFO put there since never blocks) then checked again (fstat)."""
    parts = _parts(folder, path)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, name in enumerate(parts, 1):
            shown, last = "/".join(parts[:depth]), depth == len(parts)
            mode = os.lstat(name, dir_fd=dir_fd).st_mode
            if not (stat.S_ISREG(mode) if last else stat.S_ISDIR(mode)):
                raise _refusal(shown, mode)
            try:
                fd = os.open(name, _READ_FLAGS if last else _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR):
                    raise _refusal(shown, os.lstat(name, dir_fd=dir_fd).st_mode) from None
                raise
            os.close(dir_fd)
            dir_fd = fd
            if last:
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise _refusal(shown, mode)
                dir_fd = -1
                return fd
        raise FileNotFoundError(str(path))
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


def read_bytes(folder: Path, path: Path, limit: int = MAX_READ_BYTES) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of a regular file below ``folder`` and whether it holds more.

    FileNotFoundError when it is missing, NotARegularFile for anything but a regular file reached without
    a link, OSError when it cannot be read."""
    fd = _open_below(Path(folder), Path(path))
    try:
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def read_text(folder: Path, path: Path, limit: int = MAX_READ_BYTES) -> FileText:
    """``read_bytes`` as text; bytes that are not UTF-8 become U+FFFD (a log is shown, never refused)."""
    data, cut = read_bytes(folder, path, limit)
    return FileText(data.decode("utf-8", errors="replace"), cut)


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"it holds {name}, which is not a number JSON allows")


def loads(text: str) -> Any:
    """``json.loads`` for untrusted text: NaN, Infinity, too deep a nesting and integers too long to convert
    are ValueError (``JsonRefused``) like any other damage, never RecursionError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonRefused("it is nested too deeply to read") from None
    except (json.JSONDecodeError, JsonRefused):
        raise
    except ValueError as error:
        raise JsonRefused(f"it holds a number this reader refuses ({error})") from None


def walk_entries(folder: Path) -> Iterator[tuple[str, int]]:
    """Every entry below ``folder`` as (path relative to it, lstat mode), sorted; directories are entered
    only when they are real directories, never through a link."""
    pending = [Path()]
    while pending:
        below = pending.pop()
        try:
            entries = sorted(os.scandir(folder / below), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            relative = below / entry.name
            yield str(relative), mode
            if stat.S_ISDIR(mode):
                pending.append(relative)


def replace_file(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` as a new file renamed over the old one: a hard link's other name keeps its
    text, a symlink is never followed. LabError when ``name`` is there as anything but a regular file."""
    path = Path(folder) / name
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise LabError(f"refusing to touch {path}: it is {kind_of(mode)}, not a file bst wrote; "
                       "move it away and retry")
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    temporary = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.unlink(temporary, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)
    return path
