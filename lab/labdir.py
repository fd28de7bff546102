"""The lab directory: where a lab's files live, the lock that serialises changes, owned processes.

Everything a lab creates lives under its directory and nothing outside it is ever deleted. Processes
the lab starts are found again through pid files in that directory, and a pid is signalled only when
its /proc/<pid>/cmdline still mentions the lab directory, so a recycled pid is never hit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabError

LAB_ROOT = ".lab"
LOCK_FILE = "lock"
STOP_GRACE_SECONDS = 5.0
UNIX_SOCKET_PATH_MAX = 107
"""sun_path holds 108 bytes including the terminating NUL."""


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
    lab_dir.mkdir(parents=True, exist_ok=True)
    path = lab_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def process_cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it does not exist (or is a zombie with no cmdline)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def is_owned(pid: int | None, lab_dir: Path) -> bool:
    """Whether ``pid`` is alive and its command line names a path in ``lab_dir``: this lab started it."""
    if not pid or pid <= 1:
        return False
    argv = process_cmdline(pid)
    if argv is None:
        return False
    marker = str(lab_dir.resolve()) + os.sep
    return any(marker in arg for arg in argv)


def owned_pid(pidfile: Path, lab_dir: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive and belongs to the lab."""
    pid = read_pidfile(pidfile)
    return pid if pid is not None and is_owned(pid, lab_dir) else None


def wait_for_exit(pid: int, lab_dir: Path, timeout: float) -> bool:
    """Wait until ``pid`` is gone (or no longer the lab's); True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not is_owned(pid, lab_dir):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_owned_process(pid: int, lab_dir: Path, grace: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM, then SIGKILL after ``grace``; only if the cmdline check passes. True if it was ours."""
    if not is_owned(pid, lab_dir):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not is_owned(pid, lab_dir):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if wait_for_exit(pid, lab_dir, wait):
            return True
    raise LabError(f"process {pid} of lab {lab_dir.name} survived SIGKILL; check `ps -p {pid}` and retry")


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def processes_of(lab_dir: Path) -> list[int]:
    """Every live process (but this one) whose command line mentions the lab directory: what a removed
    lab must not leave behind."""
    marker = (str(Path(lab_dir).resolve()) + os.sep).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
