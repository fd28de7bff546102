"""lab.guests without VMs: the clock commands each stack sends and when, and the SSH wait's refusals."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import lab.guests as guests
from lab.errors import LabError
from lab.guests import ClockSync, clock_offset, sync_clocks, wait_for_ssh
from lab.stacks import get_stack

HOST_NOW = 1_700_000_100.25


class FakeProvider:
    """Only what lab.guests may ask of a provider: where a host's sshd is and its console log."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path

    def ssh_target(self, host: str):
        from lab.remote import SshTarget

        return SshTarget(port=2222, key_path=self.tmp_path / "key", name=host)

    def console_log(self, host: str) -> Path:
        return self.tmp_path / f"{host}.console.log"


@pytest.fixture
def guest_clock(monkeypatch: pytest.MonkeyPatch):
    """Guests whose clock reads ``clock[host]`` (the first command's output); every command sent is
    recorded per host (FreeBSD's wire base64-encodes them: compare with ``stack.wire(...)``)."""
    clock: dict[str, str] = {}
    sent: dict[str, list[str]] = {}

    def run(conn, cmd, timeout=None, host=None, **kwargs):
        sent.setdefault(host, []).append(cmd)
        first = len(sent[host]) == 1
        return SimpleNamespace(ok=True, stdout=clock[host] + "\n" if first else "")

    monkeypatch.setattr(guests.remote, "connect", lambda target, timeout=None: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(guests.remote, "run", run)
    monkeypatch.setattr(guests, "time", SimpleNamespace(time=lambda: HOST_NOW, monotonic=time.monotonic,
                                                        sleep=time.sleep))
    return clock, sent


def test_clock_offset_knows_the_reading_resolution():
    assert clock_offset("1700000000.5\n", 1_700_000_010.0, 1_700_000_011.0) == (10.0, 0.0)
    assert clock_offset("1700000000", 1_700_000_000.0, 1_700_000_000.0) == (0.0, 1.0)
    assert clock_offset("date: illegal option -- N", 0.0, 1.0) is None


def test_stacks_supply_their_date_commands():
    linux, freebsd = get_stack("linux"), get_stack("freebsd")
    assert linux.clock_read_command() == "date +%s.%N"
    assert linux.clock_set_command(1_700_000_000.25) == "date -u -s @1700000000.250 >/dev/null"
    assert freebsd.clock_read_command() == "date +%s"
    assert freebsd.clock_set_command(1_700_000_000.75) == "date -u -f %s 1700000000 >/dev/null"


def test_a_freebsd_guest_behind_is_set_with_its_own_date_through_csh(tmp_path: Path, guest_clock):
    clock, sent = guest_clock
    stack = get_stack("freebsd")
    clock.update({"ctrl-a": "1700000000", "ctrl-b": "1700000100"})
    found = sync_clocks(FakeProvider(tmp_path), stack, ["ctrl-a", "ctrl-b"])
    assert found == {"ctrl-a": ClockSync(100.25, True), "ctrl-b": ClockSync(0.25, False)}
    assert sent["ctrl-a"] == [stack.wire("date +%s"), stack.wire("date -u -f %s 1700000100 >/dev/null")]
    assert sent["ctrl-b"] == [stack.wire("date +%s")], "within a second (plus resolution) is left alone"


def test_a_linux_guest_behind_is_set_with_gnu_date(tmp_path: Path, guest_clock):
    clock, sent = guest_clock
    stack = get_stack("linux")
    clock.update({"clnt-1": "1700000098.000000000"})
    assert sync_clocks(FakeProvider(tmp_path), stack, ["clnt-1"]) == {"clnt-1": ClockSync(2.25, True)}
    assert sent["clnt-1"][1] == stack.wire("date -u -s @1700000100.250 >/dev/null")


def test_a_guest_that_prints_no_time_is_not_set(tmp_path: Path, guest_clock):
    clock, sent = guest_clock
    clock.update({"ctrl-a": "date: illegal time format"})
    assert sync_clocks(FakeProvider(tmp_path), get_stack("freebsd"), ["ctrl-a"]) == {"ctrl-a": None}
    assert len(sent["ctrl-a"]) == 1


def test_ssh_wait_stops_at_once_when_the_vm_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(guests.remote, "ssh_banner", lambda target, timeout: pytest.fail("must not poll"))
    with pytest.raises(LabError, match=r"ctrl-a's qemu exited while booting; see its console log .*ctrl-a"):
        wait_for_ssh(FakeProvider(tmp_path), "ctrl-a", time.monotonic() + 60,
                     gone=lambda host: f"{host}'s qemu exited while booting")


def test_ssh_wait_names_the_port_and_console_log_when_time_runs_out(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(guests.remote, "ssh_banner", lambda target, timeout: None)
    with pytest.raises(LabError, match=r"ctrl-b did not answer SSH on 127.0.0.1:2222 within 0 s; "
                                       r"see its console log .*ctrl-b.console.log"):
        wait_for_ssh(FakeProvider(tmp_path), "ctrl-b", time.monotonic())
