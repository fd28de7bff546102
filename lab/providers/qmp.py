"""A tiny QMP client: JSON lines over a unix socket, enough for power control and status."""

from __future__ import annotations

import array
import json
import socket
from pathlib import Path
from typing import Any

from lab.errors import LabError

QMP_TIMEOUT_SECONDS = 5.0


class QmpError(LabError):
    """QEMU's monitor could not be reached or refused a command."""


class QmpClient:
    """One QMP session: greeting, capabilities negotiation, then commands; events are skipped."""

    def __init__(self, path: Path, timeout: float = QMP_TIMEOUT_SECONDS):
        self.path = Path(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> QmpClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as err:
            sock.close()
            raise QmpError(f"cannot reach QEMU's monitor at {self.path}: {err.strerror or err}") from None
        self._sock = sock
        greeting = self._read_message()
        if "QMP" not in greeting:
            self.close()
            raise QmpError(f"{self.path} did not greet like QMP: {greeting}")
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, arguments: dict[str, Any] | None = None, fd: int | None = None) -> Any:
        """The command's ``return`` value; QmpError on an ``error`` reply.

        ``fd``: a file descriptor passed along with the command (SCM_RIGHTS), as ``getfd`` needs.
        """
        if self._sock is None:
            raise QmpError(f"QMP session to {self.path} is not open")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        data = json.dumps(request).encode() + b"\n"
        try:
            if fd is None:
                self._sock.sendall(data)
            else:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                sent = self._sock.sendmsg([data], rights)
                if sent < len(data):
                    self._sock.sendall(data[sent:])
        except OSError as err:
            raise QmpError(f"QMP {command} to {self.path} failed: {err.strerror or err}") from None
        while True:
            reply = self._read_message()
            if "event" in reply:
                continue
            if "error" in reply:
                error = reply["error"]
                raise QmpError(f"QMP {command} failed: {error.get('class')}: {error.get('desc')}")
            if "return" in reply:
                return reply["return"]

    def send_fd(self, name: str, fd: int) -> None:
        """Hand QEMU an open file descriptor under ``name`` (for ``migrate`` to ``fd:NAME``)."""
        self.execute("getfd", {"fdname": name}, fd=fd)

    def quit(self) -> None:
        """Ask QEMU to exit at once; it may close the socket before or after replying."""
        try:
            self.execute("quit")
        except QmpError as err:
            if "closed" not in str(err):
                raise

    def _read_message(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QmpError(
                    f"QEMU's monitor at {self.path} did not answer within {self.timeout} s"
                ) from None
            except OSError as err:
                raise QmpError(f"QMP connection {self.path} closed: {err.strerror or err}") from None
            if not chunk:
                raise QmpError(f"QMP connection {self.path} closed by QEMU")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            raise QmpError(
                f"QEMU's monitor at {self.path} sent something that is not JSON: {line[:80]!r}"
            ) from None


def qmp_command(
    path: Path, command: str, arguments: dict[str, Any] | None = None, timeout: float = QMP_TIMEOUT_SECONDS
) -> Any:
    """Open a session, run one command, close."""
    with QmpClient(path, timeout) as qmp:
        return qmp.execute(command, arguments)
