"""The QMP client against a tiny fake monitor on a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from lab.providers.qmp import QmpClient, QmpError, qmp_command


class FakeMonitor:
    """Speaks enough QMP: greeting, capabilities, an event before some replies, errors, quit."""

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
        send = lambda msg: conn.sendall(json.dumps(msg).encode() + b"\r\n")  # noqa: E731
        if not self.greet:
            send({"hello": "not qmp"})
            return
        send({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})
        for line in conn.makefile("rb"):
            request = json.loads(line)
            self.received.append(request)
            command = request["execute"]
            if command == "qmp_capabilities":
                send({"return": {}})
            elif command == "query-status":
                send({"event": "RESUME", "data": {}, "timestamp": {"seconds": 1, "microseconds": 0}})
                send({"return": {"status": "running", "running": True}})
            elif command in ("stop", "cont"):
                send({"return": {}})
            elif command == "quit":
                return
            elif command == "silence":
                continue
            else:
                send(
                    {
                        "error": {
                            "class": "CommandNotFound",
                            "desc": f"The command {command} has not been found",
                        }
                    }
                )

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
    assert monitor.received[-1] == {
        "execute": "human-monitor-command",
        "arguments": {"command-line": "info status"},
    }


def test_silent_monitor_times_out(monitor: FakeMonitor):
    with QmpClient(monitor.path, timeout=0.3) as qmp:
        with pytest.raises(QmpError, match="did not answer within 0.3 s"):
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
