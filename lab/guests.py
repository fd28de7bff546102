"""Guests over SSH, above the providers: waiting until a booted host answers, and setting guest clocks.

A provider powers VMs and says where their sshd is (``provider.ssh_target``); it runs nothing in a guest.
What to run there comes from the stack (``Stack.clock_read_command``/``clock_set_command``), sent through
its wire (root's login shell on FreeBSD is csh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.markup import escape
from rich.progress import Progress

from lab import remote
from lab.errors import LabError

if TYPE_CHECKING:
    from lab.stacks.base import Stack


class Provider(Protocol):
    """What guests need of a provider (lab.providers.base.Provider has it): where a host's sshd listens and
    where its console log is. Written here so that a provider may wait for its guests through this module
    without the two importing each other."""

    def ssh_target(self, host: str) -> remote.SshTarget: ...

    def console_log(self, host: str) -> Path: ...

SSH_POLL_SECONDS = 2.0
CLOCK_STEP_SECONDS = 1.0
"""A guest whose wall clock is off by more than this (plus its clock's resolution) is set to the host's time."""


def wait_for_ssh(
    provider: Provider,
    host: str,
    deadline: float,
    progress: Progress | None = None,
    gone: Callable[[str], str | None] = lambda host: None,
) -> None:
    """Return once ``host`` shows an sshd banner, accepts the lab key and runs ``true``; LabError naming
    the console log once ``deadline`` (time.monotonic) has passed, or at once when ``gone(host)`` says
    why the host cannot answer any more (e.g. its VM exited)."""
    task = progress.add_task(f"{escape(host)}: waiting for SSH", total=None) if progress else None
    console = provider.console_log(host)
    started = time.monotonic()
    target = None
    try:
        while True:
            reason = gone(host)
            if reason is not None:
                raise LabError(f"{reason}; see its console log {console}")
            try:
                target = provider.ssh_target(host)
                if remote.ssh_banner(target, timeout=min(5.0, max(0.5, deadline - time.monotonic()))) is None:
                    raise LabError("no SSH banner yet")
                conn = remote.connect(target, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
                try:
                    record = remote.run(conn, "true", timeout=15, host=host)
                finally:
                    conn.close()
                if record.ok:
                    return
            except LabError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = f" on {target.host}:{target.port}" if target is not None else ""
                raise LabError(
                    f"{host} did not answer SSH{where} within {time.monotonic() - started:.0f} s; "
                    f"see its console log {console}"
                )
            if progress and task is not None:
                progress.update(
                    task, description=f"{escape(host)}: waiting for SSH ({time.monotonic() - started:.0f} s)"
                )
            time.sleep(min(SSH_POLL_SECONDS, max(0.0, remaining)))
    finally:
        if progress and task is not None:
            progress.remove_task(task)


def clock_offset(reply: str, before: float, after: float) -> tuple[float, float] | None:
    """(seconds the guest's clock is behind the host's, the reading's resolution) from the guest's reply to
    the clock read command sent between ``before`` and ``after``; None if the reply is not a number."""
    text = reply.strip()
    try:
        guest = float(text)
    except ValueError:
        return None
    resolution = 0.0 if "." in text else 1.0
    return (before + after) / 2 - guest, resolution


@dataclass(frozen=True)
class ClockSync:
    behind_s: float
    """How far the guest's wall clock was behind the host's when read (negative: ahead)."""
    set: bool
    """Whether it was set to the host's time (it was off by more than CLOCK_STEP_SECONDS + resolution)."""


def sync_clocks(provider: Provider, stack: Stack, hosts: list[str]) -> dict[str, ClockSync | None]:
    """Each guest's wall clock as found, set to the host's time when off by more than
    CLOCK_STEP_SECONDS. A guest paused or restored keeps counting from where it stopped, so after a
    snapshot save or restore it is behind by the pause (or the snapshot's age). None for a host that
    could not be reached or did not print a time."""

    def one(host: str) -> ClockSync | None:
        try:
            conn = remote.connect(provider.ssh_target(host), timeout=30)
        except LabError:
            return None
        try:
            before = time.time()
            record = remote.run(conn, stack.wire(stack.clock_read_command()), timeout=15, host=host)
            found = clock_offset(record.stdout, before, time.time())
            if not record.ok or found is None:
                return None
            offset, resolution = found
            if abs(offset) <= CLOCK_STEP_SECONDS + resolution:
                return ClockSync(round(offset, 2), False)
            record = remote.run(conn, stack.wire(stack.clock_set_command(time.time())), timeout=15, host=host)
            return ClockSync(round(offset, 2), record.ok)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
        return dict(zip(hosts, pool.map(one, hosts), strict=True))


__all__ = ["CLOCK_STEP_SECONDS", "ClockSync", "clock_offset", "sync_clocks", "wait_for_ssh"]
