"""One lab as scenarios see it: commands on hosts, plans, faults. Scenarios never branch on provider or stack."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from lab import remote
from lab.errors import LabError
from lab.executor import FabricRunner, OnStep, Runner, StepEvent, StepOutcome, apply_plan
from lab.plan import Plan
from lab.providers.base import HostState
from lab.record import RunRecord
from lab.result import CommandResult, not_run
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
                connection = remote.connect(self.provider.ssh_target(host), timeout=30)
                self._runners[host] = FabricRunner(connection, wire=self.stack.wire, host=host)
            return self._runners[host]

    def _connected(self, host: str) -> Runner:
        """The host's runner; a host the provider says is not running is unreachable (a RemoteError)."""
        try:
            return self.runner(host)
        except LabError as error:
            raise remote.RemoteError(str(error)) from None

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
        """The command's result, recorded once. An unreachable host, or one the provider says is not running,
        is a result without an exit code (the reason in stderr); any other exception is a bug and propagates."""
        started = time.time()
        try:
            answer = self._connected(host).run(cmd, timeout, label)
            result = replace(answer, host=host, label=label, started=answer.started or started)
        except remote.UNREACHABLE as error:
            result = not_run(cmd, error, host, started, label)
        if result.exit_code is None and not result.timed_out:
            self.forget(host)
        if self.record is not None:
            self.record.command(result)
        return result

    def apply(self, plan: Plan, label: str, on_step: OnStep | None = None) -> list[StepOutcome]:
        """Applies ``plan``: its commands go to commands.jsonl labelled ``label:host:step:phase``, each step's
        outcome to plan-<label>.jsonl; ``on_step`` sees every host start and finish every step."""

        def step_seen(event: StepEvent) -> None:
            if self.record is not None and event.outcome is not None:
                self.record.append_json(f"plan-{label}.jsonl", {**asdict(event.outcome), "time": time.time()})
            if on_step is not None:
                on_step(event)

        runners = {host: _Recording(self, host) for host in plan}
        return apply_plan(plan, runners, label=label, on_step=step_seen, powered_off=self.is_powered_off)

    def is_powered_off(self, host: str) -> bool:
        """Whether the provider reports ``host`` stopped (a plan's reboot wait then gives up)."""
        try:
            statuses = self.provider.status()
        except Exception:  # noqa: BLE001 - a provider that cannot tell leaves the wait to its timeout
            return False
        return any(s.name == host and s.state in (HostState.STOPPED, HostState.ABSENT) for s in statuses)

    def save_console(self, host: str, name: str) -> None:
        if self.record is None:
            return
        path = Path(self.provider.console_log(host))
        if path.exists():
            self.record.save(f"console/{host}-{name}.log", path.read_text(errors="replace"))


class _Recording:
    """Runner that goes through the session, so plan commands land in the run record too."""

    def __init__(self, session: LabSession, host: str):
        self.session, self.host = session, host

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        return self.session.run(self.host, cmd, timeout, label)
