"""QEMU's monitor (QMP) through QEMU's own library, ``qemu.qmp``, as blocking calls with a deadline each.

Not ``qemu.qmp.legacy.QEMUMonitorProtocol``: its ``connect`` has no timeout, and QEMU's monitor serves one
client at a time (a second client is accepted by the kernel and then waits, without a greeting, until
the first leaves), so a status query during a snapshot save would hang. Each session here runs its own
asyncio event loop, so sessions work from any thread, and every step (connect, greeting, each command)
is bounded by ``timeout``. Knows QMP only: which commands to send is the provider's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import ConnectError, ExecInterruptedError, ExecuteError, QMPClient
from qemu.qmp import QMPError as LibraryError

from lab.errors import LabError

QMP_TIMEOUT_SECONDS = 5.0
_T = TypeVar("_T")

logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
"""The library logs a monitor that closes (``quit``) as an error; QmpError already says what failed."""


class QmpError(LabError):
    """QEMU's monitor could not be reached or refused a command."""


class QmpClient:
    """One QMP session: greeting, capabilities negotiation, then commands; events are not read."""

    def __init__(self, path: Path, timeout: float = QMP_TIMEOUT_SECONDS):
        self.path = Path(path)
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._qmp: QMPClient | None = None

    def __enter__(self) -> QmpClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._qmp = QMPClient(self.path.name)
        try:
            self._run(self._qmp.connect(str(self.path)), "connect")
        except ConnectError as err:
            self.close()
            if isinstance(err.exc, OSError):
                raise QmpError(
                    f"cannot reach QEMU's monitor at {self.path}: {err.exc.strerror or err.exc}"
                ) from None
            raise QmpError(f"{self.path} did not greet like QMP: {err}") from None
        except QmpError:
            self.close()
            raise

    def close(self) -> None:
        if self._loop is None:
            return
        if self._qmp is not None:
            try:
                self._loop.run_until_complete(asyncio.wait_for(self._qmp.disconnect(), self.timeout))
            except (LibraryError, OSError, EOFError, TimeoutError):
                pass
        self._loop.close()
        self._loop, self._qmp = None, None

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """The command's ``return`` value; QmpError on an ``error`` reply, a closed monitor or a timeout."""
        if self._qmp is None:
            raise QmpError(f"QMP session to {self.path} is not open")
        try:
            return self._run(self._qmp.execute(command, arguments), command)
        except ExecuteError as err:
            raise QmpError(f"QMP {command} failed: {err.error_class}: {err}") from None
        except ExecInterruptedError:
            raise QmpError(f"QMP connection {self.path} closed by QEMU during {command}") from None
        except LibraryError as err:
            raise QmpError(f"QMP {command} to {self.path} failed: {err}") from None

    def send_fd(self, name: str, fd: int) -> None:
        """Hand QEMU an open file descriptor under ``name`` (for ``migrate`` to ``fd:NAME``): SCM_RIGHTS
        on the monitor socket, which QEMU keeps for the next command, ``getfd``."""
        if self._qmp is None:
            raise QmpError(f"QMP session to {self.path} is not open")
        try:
            self._qmp.send_fd_scm(fd)
        except (LibraryError, OSError) as err:
            raise QmpError(f"passing a file descriptor to {self.path} failed: {err}") from None
        self.execute("getfd", {"fdname": name})

    def quit(self) -> None:
        """Ask QEMU to exit at once; it may close the socket before or after replying."""
        try:
            self.execute("quit")
        except QmpError as err:
            if "closed" not in str(err):
                raise

    def _run(self, step: Awaitable[_T], what: str) -> _T:
        assert self._loop is not None
        try:
            return self._loop.run_until_complete(asyncio.wait_for(step, self.timeout))
        except TimeoutError:
            raise QmpError(
                f"QEMU's monitor at {self.path} did not answer {what} within {self.timeout} s"
            ) from None
        except (OSError, EOFError) as err:
            raise QmpError(f"QMP connection {self.path} closed: {err}") from None


def qmp_command(
    path: Path, command: str, arguments: dict[str, Any] | None = None, timeout: float = QMP_TIMEOUT_SECONDS
) -> Any:
    """Open a session, run one command, close."""
    with QmpClient(path, timeout) as qmp:
        return qmp.execute(command, arguments)


__all__ = ["QMP_TIMEOUT_SECONDS", "QmpClient", "QmpError", "qmp_command"]
