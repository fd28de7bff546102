"""Remote commands: loopback only, always a deadline, every command recorded (offline, fake connections)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke.exceptions import CommandTimedOut

from lab import remote
from lab.remote import RemoteError, SshTarget
from lab.result import CommandResult


class FakeConnection:
    """Stands in for fabric.Connection.run: replies from a table, or times out."""

    host, port = "127.0.0.1", 40022

    def __init__(self, replies: dict[str, tuple[int, str, str]]):
        self.replies = replies
        self.calls: list[dict] = []

    def run(self, cmd: str, **kwargs):
        self.calls.append({"cmd": cmd, **kwargs})
        if cmd == "sleep 99":
            raise CommandTimedOut(SimpleNamespace(stdout="partial", stderr=""), kwargs["timeout"])
        if cmd == "lost":
            raise EOFError("connection lost")
        exited, stdout, stderr = self.replies[cmd]
        return SimpleNamespace(exited=exited, stdout=stdout, stderr=stderr)


def target(port: int = 40022, host: str = "127.0.0.1") -> SshTarget:
    return SshTarget(port=port, key_path=Path("/lab/ssh/id_ed25519"), host=host, name="ctrl-a")


def test_run_always_passes_a_timeout_and_records_the_result():
    conn = FakeConnection({"zpool list": (0, "pool\n", "")})
    transcript: list[CommandResult] = []
    before = time.time()
    record = remote.run(conn, "zpool list", timeout=7, transcript=transcript, host="ctrl-a", label="pools")
    assert conn.calls == [{"cmd": "zpool list", "hide": True, "warn": True, "timeout": 7, "in_stream": False}]
    assert transcript == [record]
    assert (record.host, record.command, record.exit_code, record.stdout, record.stderr, record.label) == (
        "ctrl-a",
        "zpool list",
        0,
        "pool\n",
        "",
        "pools",
    )
    assert record.ok and not record.timed_out and record.duration_s >= 0 and record.started >= before


def test_default_timeout_is_finite():
    conn = FakeConnection({"true": (0, "", "")})
    remote.run(conn, "true")
    assert conn.calls[0]["timeout"] == remote.COMMAND_TIMEOUT_SECONDS > 0


def test_timeout_is_recorded_and_check_raises():
    conn = FakeConnection({})
    seen: list[CommandResult] = []
    record = remote.run(conn, "sleep 99", timeout=1, transcript=seen.append, host="ctrl-b")
    assert seen == [record] and record.timed_out and record.exit_code is None and record.stdout == "partial"
    with pytest.raises(RemoteError, match=r"ctrl-b: `sleep 99` did not finish within its timeout"):
        remote.run(conn, "sleep 99", timeout=1, check=True, host="ctrl-b")


def test_failed_command_is_recorded_and_check_names_it():
    conn = FakeConnection({"zpool import tank": (1, "", "cannot import 'tank': no such pool\n")})
    transcript: list[CommandResult] = []
    with pytest.raises(
        RemoteError, match=r"ctrl-a: `zpool import tank` exited 1: cannot import 'tank': no such pool"
    ):
        remote.run(conn, "zpool import tank", transcript=transcript, check=True, host="ctrl-a")
    assert transcript[0].exit_code == 1


def test_lost_connection_is_a_record_not_a_crash():
    record = remote.run(FakeConnection({}), "lost", host="ctrl-a")
    assert record.exit_code is None and not record.timed_out and record.stderr == "EOFError: connection lost"
    assert remote.describe_failure(record) == "ctrl-a: `lost` could not run: EOFError: connection lost"


def test_the_ssh_layer_imports_no_provider():
    """Providers import remote; remote importing a provider module made the two a cycle."""
    code = ("import sys, lab.remote, lab.executor, lab.result; "
            "print(sorted(m for m in sys.modules if m.startswith('lab.providers')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_providers_still_offer_the_ssh_target_they_return():
    from lab.providers import base

    assert base.SshTarget is SshTarget


@pytest.mark.parametrize("address", ["192.168.56.10", "10.0.2.15", "172.16.0.1", "8.8.8.8", "ctrl-a"])
def test_only_loopback_is_ever_contacted(address: str):
    with pytest.raises(
        RemoteError, match=f"refusing SSH to {address}: lab hosts are reached only on 127.0.0.1"
    ):
        remote.connect(target(host=address), timeout=1)
    with pytest.raises(RemoteError):
        remote.ssh_command(target(host=address))
    with pytest.raises(RemoteError):
        remote.ssh_banner(target(host=address))


def test_ssh_command_uses_the_lab_key_without_host_key_prompts():
    argv = remote.ssh_command(target(40022), "hostname")
    assert argv[:7] == ["ssh", "-F", "/dev/null", "-i", "/lab/ssh/id_ed25519", "-p", "40022"]
    assert "StrictHostKeyChecking=no" in argv and "UserKnownHostsFile=/dev/null" in argv
    assert argv[-2:] == ["root@127.0.0.1", "hostname"]


def serve_once(payload: bytes) -> int:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.sendall(payload)
            time.sleep(0.2)
        server.close()

    threading.Thread(target=answer, daemon=True).start()
    return server.getsockname()[1]


def test_banner_distinguishes_sshd_from_a_bare_forwarder():
    assert (
        remote.ssh_banner(target(serve_once(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")))
        == "SSH-2.0-OpenSSH_9.2p1 Debian"
    )
    assert remote.ssh_banner(target(serve_once(b""))) is None


def test_connect_to_a_closed_port_fails_fast_naming_the_host():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(RemoteError, match=rf"cannot SSH to ctrl-a at 127.0.0.1:{port}"):
        remote.connect(target(port), timeout=2)
    assert time.monotonic() - started < 5
