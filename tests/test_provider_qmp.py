"""The QMP client against a tiny fake monitor on a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from lab.providers.qemu.qmp import QmpClient, QmpError, qmp_command


def json_stream(conn: socket.socket):
    """The JSON objects a client sends, as QEMU's streaming parser reads them: no newline needed between."""
    decoder, buffer = json.JSONDecoder(), ""
    while chunk := conn.recv(4096):
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
        for request in json_stream(conn):
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
