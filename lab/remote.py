"""SSH to lab hosts through Fabric: key auth on loopback only, timeouts everywhere, every command recorded.

A hung guest would otherwise block the harness for minutes, so connecting and every command have a
deadline. Hosts are only ever reached on 127.0.0.1 forwarded ports (the network rule: this machine
sends no traffic to private or public addresses).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from lab.errors import LabError
from lab.providers.base import SshTarget

CONNECT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0

logging.getLogger("paramiko").addHandler(logging.NullHandler())
"""Failures surface as RemoteError; paramiko's transport thread would print tracebacks to stderr."""


class RemoteError(LabError):
    """A host could not be reached, or a checked command failed."""


@dataclass(frozen=True)
class CommandRecord:
    """One remote command and what came of it; exit_code is None when it timed out or never ran."""

    host: str
    cmd: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


Transcript = list[CommandRecord] | Callable[[CommandRecord], None]


def check_loopback(target: SshTarget) -> None:
    """Refuse anything but loopback: lab networks are reached only from inside the guests."""
    try:
        loopback = ipaddress.ip_address(target.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RemoteError(
            f"refusing SSH to {target.host}: lab hosts are reached only on 127.0.0.1 forwarded ports; "
            "use the provider's ssh_target()"
        )


def ssh_banner(target: SshTarget, timeout: float = 3.0) -> str | None:
    """The sshd's version line, or None: a cheap "is sshd up yet" without an SSH handshake.

    QEMU's user network accepts the TCP connection itself, so only the banner shows the guest answers.
    """
    check_loopback(target)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    return line if line.startswith("SSH-") else None


def connect(target: SshTarget, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Connection:
    """An open Fabric connection with the lab key; host keys are neither prompted for nor stored.

    Forwarded ports are reused by labs whose VMs make new host keys, so remembering them would only
    produce mismatches; the connection never leaves this machine.
    """
    check_loopback(target)
    config = Config(ssh_config=paramiko.SSHConfig())
    conn = Connection(
        host=target.host,
        user=target.user,
        port=target.port,
        config=config,
        connect_timeout=timeout,
        connect_kwargs={
            "key_filename": [str(target.key_path)],
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        },
    )
    conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        conn.open()
    except (OSError, paramiko.SSHException, EOFError) as err:
        conn.close()
        name = target.name or f"{target.host}:{target.port}"
        raise RemoteError(
            f"cannot SSH to {name} at {target.host}:{target.port}: {err or type(err).__name__}; "
            "check `bst status` and the host's console log"
        ) from None
    return conn


def run(
    conn: Connection,
    cmd: str,
    timeout: float = COMMAND_TIMEOUT_SECONDS,
    transcript: Transcript | None = None,
    check: bool = False,
    host: str | None = None,
) -> CommandRecord:
    """Run ``cmd`` with a deadline and record it; ``check`` raises RemoteError unless it exits 0."""
    host = host or f"{conn.host}:{conn.port}"
    started = time.monotonic()
    try:
        result = conn.run(cmd, hide=True, warn=True, timeout=timeout, in_stream=False)
        record = CommandRecord(
            host, cmd, result.exited, result.stdout, result.stderr, time.monotonic() - started
        )
    except CommandTimedOut as err:
        partial = err.result
        record = CommandRecord(
            host, cmd, None, partial.stdout, partial.stderr, time.monotonic() - started, timed_out=True
        )
    except (OSError, paramiko.SSHException, EOFError) as err:
        record = CommandRecord(
            host, cmd, None, "", f"{type(err).__name__}: {err}", time.monotonic() - started
        )
    _record(transcript, record)
    if check and not record.ok:
        raise RemoteError(describe_failure(record))
    return record


def describe_failure(record: CommandRecord) -> str:
    if record.timed_out:
        return f"{record.host}: `{record.cmd}` did not finish within its timeout ({record.duration_s:.0f} s)"
    last = (record.stderr.strip() or record.stdout.strip()).splitlines()[-1:] or ["no output"]
    if record.exit_code is None:
        return f"{record.host}: `{record.cmd}` could not run: {last[0]}"
    return f"{record.host}: `{record.cmd}` exited {record.exit_code}: {last[0]}"


def ssh_command(target: SshTarget, command: str | None = None) -> list[str]:
    """An OpenSSH argv for interactive use (``bst ssh``), with the same no-prompt host-key policy."""
    check_loopback(target)
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(target.key_path),
        "-p",
        str(target.port),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"ConnectTimeout={int(CONNECT_TIMEOUT_SECONDS)}",
        f"{target.user}@{target.host}",
    ]
    if command is not None:
        argv.append(command)
    return argv


def _record(transcript: Transcript | None, record: CommandRecord) -> None:
    if transcript is None:
        return
    if callable(transcript):
        transcript(record)
    else:
        transcript.append(record)
