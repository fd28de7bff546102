"""The lab directory: where a lab's files live, the lock that serialises changes, owned processes.

Everything a lab creates lives under its directory and nothing outside it is ever deleted or written:
every such path goes through ``inside``, which resolves it and refuses one that leaves the directory or
passes through a symlink. Processes the lab starts are found again through pid files in that directory,
and a pid is signalled only when its /proc/<pid>/cmdline still holds ``-pidfile <that pid file>``, the
argument we started it with, so a recycled pid (even one running ``tail`` on a lab file) is never hit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError
from lab.runfolder_io import read_bytes

LAB_ROOT = ".lab"
LOCK_FILE = "lock"
STOP_GRACE_SECONDS = 5.0
UNIX_SOCKET_PATH_MAX = 107
"""sun_path holds 108 bytes including the terminating NUL."""
PIDFILE_FLAG = "-pidfile"
"""qemu and vde_switch both take ``-pidfile PATH``: the argument that makes a process the lab's."""
PIDFILE_MAX_BYTES = 64
PID_MAX_DIGITS = 7
"""Linux pids are at most 2^22 (PID_MAX_LIMIT): seven digits."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` with a pyproject.toml or .git, else ``start``."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file() or (directory / ".git").exists():
            return directory
    return start


def default_lab_dir(lab_name: str, start: Path | None = None) -> Path:
    """``<project or cwd>/.lab/<lab name>``."""
    return project_root(start) / LAB_ROOT / lab_name


def checked_lab_dir(lab_dir: Path | str) -> Path:
    """The lab directory, absolute and resolved; LabError when it (or the ``.lab`` holding it) is a symlink
    or a file: ``down`` through a link would delete files in the link's target."""
    path = Path(os.path.abspath(lab_dir))
    for candidate in (path, path.parent) if path.parent.name == LAB_ROOT else (path,):
        if candidate.is_symlink():
            raise LabError(f"{candidate} is a symlink; the lab works only in a real directory: "
                           "remove the link (the files it points to are left alone) and retry")
        if candidate.exists() and not candidate.is_dir():
            raise LabError(f"{candidate} is a file, not a lab directory; move it away and retry")
    return path.resolve()


def inside(root: Path, path: Path | str) -> Path:
    """``path`` once it is known to lie inside ``root`` with no symlink on the way below ``root``: the only
    way the lab names a path it deletes or writes. Returned under ``root`` resolved; LabError otherwise.

    A relative ``path`` is taken from the current directory, as ``open`` would; ``root`` may itself sit
    behind a symlink (an ``artifacts`` link to a bigger disk): only what is below it is checked."""
    given = Path(os.path.normpath(os.path.abspath(path)))
    for base in (Path(os.path.normpath(os.path.abspath(root))), Path(root).resolve()):
        if str(given).startswith(str(base) + os.sep):
            break
    else:
        raise LabError(f"refusing to touch {path}: it is not inside {root}; check the names in the topology")
    resolved_root = Path(root).resolve()
    normal = resolved_root / given.relative_to(base)
    probe = normal
    while probe != resolved_root:
        if probe.is_symlink():
            raise LabError(f"refusing to touch {normal}: {probe} is a symlink; remove the link and retry")
        probe = probe.parent
    if Path(path).resolve() != normal:
        raise LabError(f"refusing to touch {path}: it leads outside {root} through a symlink")
    return normal


def remove_inside(root: Path, path: Path | str) -> None:
    """Delete ``path`` (a tree or a file; nothing when absent) after ``inside`` has checked it."""
    path = inside(root, path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def check_socket_path(path: Path) -> None:
    """Unix sockets cannot have long paths: say so before qemu or vde_switch fail obscurely."""
    if len(os.fsencode(str(path))) > UNIX_SOCKET_PATH_MAX:
        raise LabError(
            f"socket path {path} is longer than {UNIX_SOCKET_PATH_MAX} bytes; "
            "use a shorter lab directory (--lab-dir or run from a shallower directory)"
        )


# --- the lock ------------------------------------------------------------------------------------


class LabBusyError(LabError):
    """Another process holds the lab's lock."""


@contextmanager
def lab_lock(lab_dir: Path, operation: str) -> Iterator[None]:
    """Hold the lab's flock for the whole operation; fail at once if another process holds it.

    The kernel drops a flock when its holder dies, so a lock left by a killed process is never stale.
    The lock file itself is never removed: removing it would let two processes lock different inodes.
    """
    path = lab_dir / LOCK_FILE
    try:
        lab_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise LabError(f"cannot write the lab directory {lab_dir}: {error.strerror}; "
                       "use a writable place (--lab-dir, or run from another directory)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LabBusyError(
                f"lab {lab_dir.name} is busy: {holder} holds {path}; "
                "wait for it to finish (or stop that process) and retry"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"bst {operation} (pid {os.getpid()})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)


# --- owned processes -----------------------------------------------------------------------------


def read_pidfile(path: Path) -> int | None:
    """The pid in a pid file; None when it is missing, holds no pid, or is not a regular file (a FIFO there
    would block `bst status`, a link is not the file qemu wrote)."""
    try:
        data, _ = read_bytes(path.parent, path, PIDFILE_MAX_BYTES)
    except (OSError, LabError):
        return None
    text = data.strip()
    return int(text) if text.isdigit() and len(text) <= PID_MAX_DIGITS else None


def process_cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it does not exist (or is a zombie with no cmdline)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def is_owned(pid: int | None, pidfile: Path) -> bool:
    """Whether ``pid`` is alive and was started with ``-pidfile <pidfile>``: a process this lab started.

    A recycled pid running anything else, even ``tail -f`` on a file of the lab, lacks that argument pair."""
    if not pid or pid <= 1:
        return False
    argv = process_cmdline(pid)
    return argv is not None and _names_pidfile(argv, {_canonical(pidfile)})


def _canonical(path: Path | str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _names_pidfile(argv: list[str], pidfiles: set[str] | None = None, under: str | None = None) -> bool:
    """``argv`` holds ``-pidfile P`` with P one of ``pidfiles``, or P inside the directory ``under``."""
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag != PIDFILE_FLAG or not value.startswith(os.sep):
            continue
        value = _canonical(value)
        if (pidfiles is not None and value in pidfiles) or (under is not None and value.startswith(under + os.sep)):
            return True
    return False


def owned_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive and was started with that pid file."""
    pid = read_pidfile(pidfile)
    return pid if pid is not None and is_owned(pid, pidfile) else None


def wait_for_exit(pid: int, pidfile: Path, timeout: float) -> bool:
    """Wait until ``pid`` is gone (or no longer the one started with ``pidfile``); True if it went within
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not is_owned(pid, pidfile):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_owned_process(pid: int, pidfile: Path, grace: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM, then SIGKILL after ``grace``; only while ``pid`` is the process started with ``pidfile``.
    True if it was ours."""
    if not is_owned(pid, pidfile):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not is_owned(pid, pidfile):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if wait_for_exit(pid, pidfile, wait):
            return True
    raise LabError(f"process {pid} (started with {PIDFILE_FLAG} {pidfile}) survived SIGKILL; "
                   f"check `ps -p {pid}` and retry")


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def processes_of(lab_dir: Path) -> list[int]:
    """Every live process (but this one) started with a ``-pidfile`` inside the lab directory: the qemus and
    switches a removed lab must not leave behind."""
    under = _canonical(Path(lab_dir).resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            argv = process_cmdline(int(entry.name))
            if argv is not None and _names_pidfile(argv, under=under):
                found.append(int(entry.name))
    return found
