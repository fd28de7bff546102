"""One lab as scenarios see it: commands on hosts, plans, faults. Scenarios never branch on provider or stack."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from lab.executor import CommandResult, FabricRunner, Runner, StepOutcome, Transcript, apply_plan
from lab.plan import Plan
from lab.providers.base import HostState
from lab.record import CommandRecord, RunRecord
from lab.stacks import Stack
from lab.topology import Topology


class LabSession:
    """Topology + provider + stack + a run record; every command sent is recorded with its result."""

    def __init__(self, topo: Topology, provider: Any, stack: Stack, record: RunRecord | None = None):
        self.topo = topo
        self.provider = provider
        self.stack = stack
        self.record = record
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()

    def runner(self, host: str) -> Runner:
        with self._lock:
            if host not in self._runners:
                from lab import remote

                connection = remote.connect(self.provider.ssh_target(host), timeout=30)
                self._runners[host] = FabricRunner(connection, wire=self.stack.wire)
            return self._runners[host]

    def forget(self, host: str) -> None:
        """Drop a host's connection (it was powered off or rebooted)."""
        with self._lock:
            runner = self._runners.pop(host, None)
        if runner is not None:
            try:
                runner.connection.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close in many ways
                pass

    def run(self, host: str, cmd: str, timeout: float = 60, label: str = "") -> CommandResult:
        started = time.time()
        try:
            result = self.runner(host).run(cmd, timeout)
        except Exception as error:  # noqa: BLE001 - an unreachable host is a result, not a crash
            self.forget(host)
            result = CommandResult(cmd, 255, "", f"{type(error).__name__}: {error}", time.time() - started)
        if self.record is not None:
            self.record.command(CommandRecord(host, cmd, result.exit_code, result.stdout, result.stderr,
                                              started, result.duration, label))
        return result

    def apply(self, plan: Plan, label: str) -> list[StepOutcome]:
        runners = {host: _Recording(self, host, label) for host in plan}
        transcript = Transcript(self.record.folder / f"plan-{label}.jsonl") if self.record else None
        try:
            return apply_plan(plan, runners, transcript=transcript, powered_off=self.is_powered_off)
        finally:
            if transcript is not None:
                transcript.close()

    def is_powered_off(self, host: str) -> bool:
        """Whether the provider reports ``host`` stopped (a plan's reboot wait then gives up)."""
        try:
            statuses = self.provider.status()
        except Exception:  # noqa: BLE001 - a provider that cannot tell leaves the wait to its timeout
            return False
        return any(s.name == host and s.state in (HostState.STOPPED, HostState.ABSENT) for s in statuses)

    def power_off(self, host: str) -> None:
        self.provider.power_off(host)
        self.forget(host)
        if self.record:
            self.record.event("fault", action="power-off", host=host)

    def start(self, host: str) -> None:
        self.provider.start(host)
        self.forget(host)
        if self.record:
            self.record.event("action", action="start", host=host)

    def save_console(self, host: str, name: str) -> None:
        if self.record is None:
            return
        path = Path(self.provider.console_log(host))
        if path.exists():
            self.record.save(f"console/{host}-{name}.log", path.read_text(errors="replace"))


class _Recording:
    """Runner that goes through the session, so plan commands land in the run record too."""

    def __init__(self, session: LabSession, host: str, label: str):
        self.session, self.host, self.label = session, host, label

    def run(self, cmd: str, timeout: float) -> CommandResult:
        return self.session.run(self.host, cmd, timeout, self.label)
