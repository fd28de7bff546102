"""The QMP client against a tiny fake monitor on a unix socket."""

from __future__ import annotations

import array
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.qemu_leaf.qmp import QmpClient, QmpError, qmp_command


def json_stream(receive: Callable[[], bytes]):
    """The JSON objects a client sends, as QEMU's streaming parser reads them: no newline needed between.
    ``receive``: the next bytes from the client, b"" once it has gone."""
    decoder, buffer = json.JSONDecoder(), ""
    while chunk := receive():
        buffer += chunk.decode()
        while buffer.strip():
            try:
                request, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                break
            buffer = buffer.lstrip()[end:]
            yield request


class FakeMonitor:
    """Speaks enough QMP: greeting, capabilities, an event before some replies, errors, quit. Like QEMU
    it echoes a request's ``id`` in the reply, and refuses commands before ``qmp_capabilities``."""

    def __init__(self, path: Path, greet: bool = True):
        self.path = path
        self.greet = greet
        self.received: list[dict] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self.session(conn)

    def session(self, conn: socket.socket) -> None:
        def send(msg: dict, request: dict | None = None) -> None:
            if request is not None and "id" in request and "event" not in msg:
                msg = {**msg, "id": request["id"]}
            conn.sendall(json.dumps(msg).encode() + b"\r\n")

        if not self.greet:
            send({"hello": "not qmp"})
            return
        send({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})
        negotiated = False
        for request in json_stream(lambda: conn.recv(4096)):
            self.received.append(request)
            command = request["execute"]
            if command == "qmp_capabilities":
                negotiated = True
                send({"return": {}}, request)
            elif not negotiated:
                send({"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with "
                                "'qmp_capabilities'"}}, request)
            elif command == "query-status":
                send({"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 0}})
                send({"return": {"status": "running", "running": True}}, request)
            elif command in ("stop", "cont"):
                send({"return": {}}, request)
            elif command == "quit":
                return
            elif command == "silence":
                continue
            else:
                send({"error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}},
                     request)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def monitor(tmp_path: Path):
    fake = FakeMonitor(tmp_path / "qmp.sock")
    yield fake
    fake.close()


def test_negotiates_then_runs_commands_skipping_events(monitor: FakeMonitor):
    with QmpClient(monitor.path) as qmp:
        assert qmp.execute("query-status") == {"status": "running", "running": True}
        assert qmp.execute("stop") == {}
    assert [r["execute"] for r in monitor.received] == ["qmp_capabilities", "query-status", "stop"]
    assert all("id" in r for r in monitor.received[1:]), "replies are matched to requests by id"


def test_one_shot_command(monitor: FakeMonitor):
    assert qmp_command(monitor.path, "cont") == {}


def test_error_reply_is_a_qmp_error_with_the_description(monitor: FakeMonitor):
    with pytest.raises(
        QmpError, match="QMP bogus failed: CommandNotFound: The command bogus has not been found"
    ):
        qmp_command(monitor.path, "bogus")


def test_quit_tolerates_the_monitor_closing_without_a_reply(monitor: FakeMonitor):
    with QmpClient(monitor.path) as qmp:
        qmp.quit()


def test_arguments_are_sent(monitor: FakeMonitor):
    with QmpClient(monitor.path) as qmp:
        with pytest.raises(QmpError):
            qmp.execute("human-monitor-command", {"command-line": "info status"})
    sent = dict(monitor.received[-1])
    sent.pop("id", None)
    assert sent == {"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}


def test_silent_monitor_times_out(monitor: FakeMonitor):
    with QmpClient(monitor.path, timeout=0.3) as qmp:
        with pytest.raises(QmpError, match="did not answer silence within 0.3 s"):
            qmp.execute("silence")


def test_missing_socket_says_where(tmp_path: Path):
    with pytest.raises(QmpError, match=f"cannot reach QEMU's monitor at {tmp_path}/absent.sock"):
        qmp_command(tmp_path / "absent.sock", "stop")


def test_a_socket_that_is_not_qmp_is_refused(tmp_path: Path):
    fake = FakeMonitor(tmp_path / "other.sock", greet=False)
    try:
        with pytest.raises(QmpError, match="did not greet like QMP"):
            qmp_command(fake.path, "stop")
    finally:
        fake.close()


def test_a_monitor_busy_with_another_client_times_out_instead_of_hanging(tmp_path: Path):
    """QEMU serves one monitor client at a time: the kernel accepts a second one, which then gets no
    greeting (why qemu.qmp.legacy, whose connect has no timeout, is not used)."""
    path = tmp_path / "busy.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    try:
        with pytest.raises(QmpError, match="did not answer connect within 0.3 s"):
            qmp_command(path, "query-status", timeout=0.3)
    finally:
        server.close()


def test_sessions_work_from_threads(monitor: FakeMonitor):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda _: qmp_command(monitor.path, "query-status"), range(3)))
    assert replies == [{"status": "running", "running": True}] * 3


def test_send_fd_hands_the_descriptor_to_the_monitor_with_getfd(tmp_path: Path):
    """The snapshot save hands qemu the state file this way: SCM_RIGHTS on the monitor socket, then
    ``getfd``, which takes the descriptors received since the last command (as QEMU's monitor does)."""
    path = tmp_path / "qmp.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[tuple[dict, list[int]]] = []

    def serve() -> None:
        conn, _ = server.accept()
        pending = array.array("i")

        def receive() -> bytes:
            data, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(pending.itemsize))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    pending.frombytes(payload[: len(payload) - len(payload) % pending.itemsize])
            return data

        with conn:
            conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
            for request in json_stream(receive):
                received.append((request, list(pending)))
                del pending[:]
                conn.sendall(json.dumps({"return": {}, "id": request.get("id")}).encode() + b"\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    target = tmp_path / "state"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with QmpClient(path) as qmp:
            qmp.send_fd("beast-snapshot", fd)
    finally:
        os.close(fd)
    thread.join(5)
    server.close()
    request, fds = received[-1]
    request.pop("id", None)
    assert request == {"execute": "getfd", "arguments": {"fdname": "beast-snapshot"}}
    assert len(fds) == 1
    os.write(fds[0], b"through the passed descriptor")
    os.close(fds[0])
    assert target.read_bytes() == b"through the passed descriptor"
