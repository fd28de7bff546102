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
from pathlib import Path

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from lab.errors import LabError
from lab.result import CommandResult

CONNECT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0

logging.getLogger("paramiko").addHandler(logging.NullHandler())
"""Failures surface as RemoteError; paramiko's transport thread would print tracebacks to stderr."""


class RemoteError(LabError):
    """A host could not be reached, or a checked command failed."""


UNREACHABLE = (OSError, EOFError, paramiko.SSHException, RemoteError)
"""What reaching a host can raise (socket.timeout is an OSError): such a command's result has no exit code."""


@dataclass(frozen=True)
class SshTarget:
    """Where a host's sshd is reachable from this machine: always a forwarded port on loopback."""

    port: int
    key_path: Path
    host: str = "127.0.0.1"
    user: str = "root"
    name: str = ""
    """The lab host this target reaches, for messages and transcripts."""


Transcript = list[CommandResult] | Callable[[CommandResult], None]


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
    label: str = "",
) -> CommandResult:
    """Run ``cmd`` with a deadline and record it; ``check`` raises RemoteError unless it exits 0.

    A timeout or a lost connection is a result without an exit code, never an exception."""
    host = host or f"{conn.host}:{conn.port}"
    started, clock = time.time(), time.monotonic()
    outcome: dict = {"host": host, "started": started, "label": label}
    try:
        reply = conn.run(cmd, hide=True, warn=True, timeout=timeout, in_stream=False)
        result = CommandResult(cmd, reply.exited, reply.stdout, reply.stderr, time.monotonic() - clock, **outcome)
    except CommandTimedOut as err:
        partial = err.result
        result = CommandResult(cmd, None, partial.stdout, partial.stderr, time.monotonic() - clock,
                               timed_out=True, **outcome)
    except (OSError, paramiko.SSHException, EOFError) as err:
        result = CommandResult(cmd, None, "", f"{type(err).__name__}: {err}", time.monotonic() - clock, **outcome)
    _record(transcript, result)
    if check and not result.ok:
        raise RemoteError(describe_failure(result))
    return result


def describe_failure(result: CommandResult) -> str:
    if result.timed_out:
        return f"{result.host}: `{result.command}` {result.ending}"
    return f"{result.host}: `{result.command}` {result.ending}: {result.last_line()}"


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


def _record(transcript: Transcript | None, result: CommandResult) -> None:
    if transcript is None:
        return
    if callable(transcript):
        transcript(result)
    else:
        transcript.append(result)
