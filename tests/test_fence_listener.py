"""The fence listener's answers and its log, in-process with a fake power switch; and its sockets, as qemu
and fence_virt use them (qemu reconnects, noise on the line, one request then one reply)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.fence import FenceRequest, read_fence_log
from lab.fence.listener import FenceListener
from lab.fence.protocol import Action, Request, decode_hosts

STATES = ("running", "paused", "stopped", "absent")


class FakePower:
    """A lab of three hosts; refuses (as the provider does) a host that is not one of them."""

    def __init__(self, **states: str):
        self.hosts = ["ctrl-a", "ctrl-b", "clnt-1"]
        self.states = {"ctrl-a": "running", "ctrl-b": "running", "clnt-1": "running"}
        self.states.update({k.replace("_", "-"): v for k, v in states.items()})
        self.calls: list[tuple[str, str]] = []
        self.fail_on: str | None = None

    def _check(self, host: str) -> None:
        if host not in self.hosts:
            raise LabError(f"no host {host!r} in this lab")

    def state(self, host: str) -> str:
        self._check(host)
        assert self.states[host] in STATES
        return self.states[host]

    def off(self, host: str) -> None:
        self._check(host)
        self.calls.append(("off", host))
        self.states[host] = "stopped"

    def on(self, host: str) -> None:
        self._check(host)
        self.calls.append(("on", host))
        if self.fail_on == host:
            raise LabError(f"lab is busy (bst up); {host} not started")
        self.states[host] = "running"

    def uuid(self, host: str) -> str:
        return {"ctrl-a": "0a0a0a0a", "ctrl-b": "0b0b0b0b", "clnt-1": "0c0c0c0c"}[host]


def c_request(request: int, domain: bytes, seqno: int) -> bytes:
    return struct.pack("<IBB64sI", 0x61626261, request, 0, domain, seqno)


def reply(response: int) -> bytes:
    return struct.pack("<IB", 0x61626261, response)


@pytest.fixture
def make_listener(tmp_path: Path):
    def make(power: FakePower) -> FenceListener:
        sockets = {h: tmp_path / f"{h}.sock" for h in power.hosts}
        return FenceListener(power, sockets, tmp_path / "requests.jsonl", tmp_path / "fence.log")

    return make


@pytest.mark.parametrize("state, response", [("running", 0), ("paused", 0), ("stopped", 2), ("absent", 2)])
def test_status_is_on_for_a_running_or_paused_vm(make_listener, state: str, response: int):
    power = FakePower(ctrl_b=state)
    assert make_listener(power).answer("ctrl-a", Request(Action.STATUS, "ctrl-b", 5)) == reply(response)
    assert power.calls == []


def test_off_powers_a_paused_vm_off_and_logs_it(make_listener, tmp_path: Path):
    power = FakePower(ctrl_b="paused")
    listener = make_listener(power)
    before = time.time()
    assert listener.answer("ctrl-a", Request(Action.OFF, "ctrl-b", 77)) == reply(0)
    assert power.calls == [("off", "ctrl-b")] and power.states["ctrl-b"] == "stopped"
    [logged] = read_fence_log(tmp_path / "requests.jsonl")
    assert isinstance(logged, FenceRequest)
    assert (logged.requester, logged.plug, logged.action, logged.response, logged.seqno, logged.state_before) == (
        "ctrl-a", "ctrl-b", "off", "success", 77, "paused")
    assert before <= logged.epoch <= time.time() and logged.time_utc.endswith("+00:00")
    assert logged.seconds >= 0
    assert "ctrl-a asked off ctrl-b (seq 77): success, was paused" in (tmp_path / "fence.log").read_text()


def test_off_of_a_stopped_vm_succeeds_without_touching_it(make_listener):
    power = FakePower(ctrl_b="stopped")
    assert make_listener(power).answer("ctrl-a", Request(Action.OFF, "ctrl-b", 1)) == reply(0)
    assert power.calls == []


def test_reboot_is_off_then_on_and_on_starts_a_stopped_vm(make_listener):
    power = FakePower(clnt_1="stopped")
    listener = make_listener(power)
    assert listener.answer("ctrl-a", Request(Action.REBOOT, "ctrl-b", 1)) == reply(0)
    assert listener.answer("ctrl-a", Request(Action.ON, "clnt-1", 2)) == reply(0)
    assert power.calls == [("off", "ctrl-b"), ("on", "ctrl-b"), ("on", "clnt-1")]


def test_a_host_of_another_lab_is_refused_with_perm_and_logged(make_listener, tmp_path: Path):
    power = FakePower()
    listener = make_listener(power)
    for action in (Action.OFF, Action.ON, Action.STATUS, Action.REBOOT):
        assert listener.answer("ctrl-a", Request(action, "prod-db", 3)) == reply(3)
    assert power.calls == []
    log = read_fence_log(tmp_path / "requests.jsonl")
    assert [(r.response, r.state_before) for r in log] == [("perm", "unknown")] * 4


def test_a_failed_power_on_is_fail(make_listener, tmp_path: Path):
    power = FakePower(ctrl_b="stopped")
    power.fail_on = "ctrl-b"
    assert make_listener(power).answer("ctrl-a", Request(Action.ON, "ctrl-b", 1)) == reply(1)
    assert "on ctrl-b failed: lab is busy" in (tmp_path / "fence.log").read_text()


def test_hostlist_names_the_labs_hosts_and_their_power(make_listener):
    power = FakePower(ctrl_b="paused", clnt_1="stopped")
    answer = make_listener(power).answer("ctrl-a", Request(Action.HOSTLIST, "", 1))
    assert answer[:5] == reply(253)
    assert decode_hosts(answer[5:]) == [("ctrl-a", "0a0a0a0a", True), ("ctrl-b", "0b0b0b0b", True),
                                        ("clnt-1", "0c0c0c0c", False)]


def test_null_and_devstatus_succeed(make_listener):
    listener = make_listener(FakePower())
    assert listener.answer("ctrl-a", Request(Action.NULL, "", 1)) == reply(0)
    assert listener.answer("ctrl-a", Request(Action.DEVSTATUS, "", 2)) == reply(0)


def test_a_torn_last_line_is_left_for_the_next_read_and_a_foreign_line_is_one_error(tmp_path: Path):
    path = tmp_path / "requests.jsonl"
    assert read_fence_log(path) == []
    path.write_text('{"not": "a request"}\n')
    with pytest.raises(LabError, match=r"line 1 is not a fence request"):
        read_fence_log(path)
    path.write_text('{"time_utc": "x"')
    assert read_fence_log(path) == []


# --- the sockets ---------------------------------------------------------------------------------


@pytest.fixture
def serving(make_listener):
    power = FakePower(ctrl_b="paused")
    listener = make_listener(power)
    listener.bind()
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    yield listener, power
    listener.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def exchange(path: Path, data: bytes, size: int = 5) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        conn.sendall(data)
        got = b""
        while len(got) < size:
            chunk = conn.recv(size - len(got))
            assert chunk, f"the listener closed after {got!r}"
            got += chunk
        return got


def test_each_socket_names_its_requester_and_qemu_may_reconnect(serving, tmp_path: Path):
    listener, power = serving
    assert exchange(tmp_path / "ctrl-a.sock", c_request(4, b"ctrl-b", 1)) == reply(0)
    assert exchange(tmp_path / "ctrl-a.sock", b"\x00\xff noise" + c_request(1, b"ctrl-b", 2)) == reply(0)
    assert exchange(tmp_path / "clnt-1.sock", c_request(4, b"ctrl-b", 3)) == reply(2)
    log = read_fence_log(tmp_path / "requests.jsonl")
    assert [(r.requester, r.action, r.response) for r in log] == [
        ("ctrl-a", "status", "success"), ("ctrl-a", "off", "success"), ("clnt-1", "status", "off")]
    assert power.calls == [("off", "ctrl-b")]
    assert "malformed input ignored" in (tmp_path / "fence.log").read_text()


def test_stop_removes_the_sockets(make_listener, tmp_path: Path):
    listener = make_listener(FakePower())
    listener.bind()
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    assert (tmp_path / "ctrl-b.sock").is_socket()
    listener.stop()
    thread.join(timeout=5)
    assert not (tmp_path / "ctrl-b.sock").exists()


def test_a_request_that_breaks_the_listener_is_fail_and_the_next_one_is_served(serving, tmp_path: Path):
    listener, power = serving

    def broken(host: str) -> str:
        raise LabError("state.json is not valid JSON")

    power.state = broken
    assert exchange(tmp_path / "ctrl-a.sock", c_request(4, b"ctrl-b", 1)) == reply(1)
    del power.state
    assert exchange(tmp_path / "ctrl-a.sock", c_request(4, b"ctrl-b", 2)) == reply(0)
    assert "ctrl-a's status ctrl-b failed: state.json is not valid JSON" in (tmp_path / "fence.log").read_text()
