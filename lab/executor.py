"""Applies a plan to hosts: stage by stage, hosts of a stage in parallel, each step skipped when done.

A step is done when every file it writes already has its content (sha256 compared on the host) and its
``check`` exits 0. Otherwise the executor writes the files, runs the commands in order, then ``verify``.
The executor knows nothing about stacks: it talks to hosts only through ``Runner`` objects, so tests
drive it with an in-memory fake and real runs with ``FabricRunner``.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Protocol

from lab import remote
from lab.errors import LabError
from lab.plan import Plan, Step, stages
from lab.result import CommandResult, not_run

DEFAULT_COMMAND_TIMEOUT_S = 600.0
STDERR_TAIL_CHARS = 300
"""A step by this name restarts its host. Its commands may lose the connection (their results are only
recorded), then the executor polls the step's ``check`` (e.g. "booted after the export") until it passes."""
DEFAULT_REBOOT_TIMEOUT_S = 600.0
REBOOT_POLL_INTERVAL_S = 3.0
REBOOT_COMMAND_TIMEOUT_S = 30.0


class Runner(Protocol):
    """Runs one shell command on one host; never raises for a failing, hanging or unreachable command.

    ``label`` names what sent the command (for the run record); the result carries it back."""

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult: ...


class FabricRunner:
    """A ``Runner`` over a fabric ``Connection``: ``remote.run``'s result, its exit code None when the command
    timed out (``timed_out``) or could not be sent (``stderr`` says why)."""

    def __init__(self, connection: Any, wire: Callable[[str], str] | None = None, host: str = "") -> None:
        self.connection = connection
        self.wire = wire
        self.host = host

    def run(self, cmd: str, timeout: float, label: str = "") -> CommandResult:
        """A timed-out or lost connection is closed first: the next run opens a fresh one, as the host may have
        rebooted. ``wire`` (the stack's) turns ``cmd`` into the string sent; the result keeps the readable
        ``cmd``."""
        sent = self.wire(cmd) if self.wire is not None else cmd
        result = remote.run(self.connection, sent, timeout=timeout, host=self.host or None, label=label)
        if result.exit_code is None:
            self.connection.close()
        return replace(result, command=cmd)


def command_label(plan: str, host: str, step: str, phase: str) -> str:
    """The label of a command a plan sent, e.g. "provision:ctrl-a:create pool:command"."""
    return f"{plan}:{host}:{step}:{phase}"


class Status(StrEnum):
    RAN = "ran"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class StepOutcome:
    host: str
    step: str
    stage: int
    status: Status
    duration: float
    error: str = ""


@dataclass(frozen=True)
class StepEvent:
    """A host starting (``outcome`` None) or finishing one plan step: the live progress display's input.

    ``index`` counts from 1 over the host's steps in the order they run; ``total`` is how many it has."""

    host: str
    index: int
    total: int
    step: str
    outcome: StepOutcome | None = None

    @property
    def status(self) -> str:
        """"started", or the outcome's ``Status`` value."""
        return "started" if self.outcome is None else self.outcome.status.value


class StepFailed(LabError):
    """A step's command or verify failed; ``outcomes`` holds everything applied up to then."""

    def __init__(self, message: str, outcomes: list[StepOutcome] | None = None) -> None:
        super().__init__(message)
        self.outcomes = outcomes or []


OnStep = Callable[[StepEvent], None]
"""Called from the host's thread when a host starts and when it finishes each plan step."""
PoweredOff = Callable[[str], bool]
"""Whether the provider knows a host is powered off (a reboot can then never finish)."""


def files_match_command(files: dict[str, str]) -> str | None:
    """A command exiting 0 when every file exists with exactly the given content (sha256)."""
    if not files:
        return None
    digest = (
        "beast_sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum < \"$1\" | cut -d' ' -f1;"
        ' else sha256 -q "$1"; fi; }'
    )
    tests = [
        f'[ -f {shlex.quote(path)} ] && [ "$(beast_sha256 {shlex.quote(path)})" = '
        f"{hashlib.sha256(content.encode()).hexdigest()} ]"
        for path, content in files.items()
    ]
    return f"{digest}; " + " && ".join(tests)


def write_file_command(path: str, content: str) -> str:
    """Writes ``content`` to ``path`` atomically: a quoted heredoc when the text allows, else base64."""
    target = shlex.quote(path)
    temporary = shlex.quote(f"{path}.beast-new")
    parent = shlex.quote(str(PurePosixPath(path).parent))
    delimiter = f"BEAST_EOF_{hashlib.sha256(content.encode()).hexdigest()[:12]}"
    heredoc_safe = (
        content.endswith("\n")
        and "\0" not in content
        and "\r" not in content
        and delimiter not in content.splitlines()
    )
    if heredoc_safe:
        body = f"cat > {temporary} <<'{delimiter}'\n{content}{delimiter}\n"
    else:
        encoded = base64.b64encode(content.encode()).decode()
        decode = "{ if command -v base64 >/dev/null 2>&1; then base64 -d; else b64decode -r; fi; }"
        body = f"printf '%s' {encoded} | {decode} > {temporary}\n"
    return f"mkdir -p {parent} && {body}mv -f {temporary} {target}"


def _tail(text: str) -> str:
    flat = " ".join(text.split())
    return flat[-STDERR_TAIL_CHARS:]


class _HostApplier:
    """Applies one host's steps of one stage, in order, stopping at its first failure."""

    def __init__(
        self,
        host: str,
        runner: Runner,
        timeout: float,
        label: str,
        total: int,
        on_step: OnStep | None,
        reboot_timeout: float = DEFAULT_REBOOT_TIMEOUT_S,
        powered_off: PoweredOff | None = None,
    ) -> None:
        self.host = host
        self.runner = runner
        self.timeout = timeout
        self.label = label
        self.total = total
        self.reboot_timeout = reboot_timeout
        self.powered_off = powered_off
        self.on_step = on_step

    def _run(self, step: Step, phase: str, cmd: str, timeout: float | None = None) -> CommandResult:
        label = command_label(self.label, self.host, step.name, phase)
        started = time.time()
        try:
            return self.runner.run(cmd, timeout or self.timeout, label)
        except remote.UNREACHABLE as error:  # a lost connection fails the step; anything else is a bug
            return not_run(cmd, error, self.host, started, label)

    def is_done(self, step: Step) -> bool:
        files_cmd = files_match_command(step.files)
        if files_cmd is not None and not self._run(step, "files-check", files_cmd).ok:
            return False
        if step.check is not None and not self._run(step, "check", step.check).ok:
            return False
        return True

    def _failure(self, step: Step, what: str, result: CommandResult) -> str:
        tail = _tail(result.stderr) or _tail(result.stdout) or "no output"
        return f"{self.host}: step '{step.name}' failed: {what} `{result.command}` {result.ending}: {tail}"

    def _notify(self, index: int, step: Step, outcome: StepOutcome | None = None) -> None:
        if self.on_step is not None:
            self.on_step(StepEvent(self.host, index, self.total, step.name, outcome))

    def apply_step(self, index: int, step: Step) -> StepOutcome:
        started = time.monotonic()
        self._notify(index, step)

        def outcome(status: Status, error: str = "") -> StepOutcome:
            result = StepOutcome(self.host, step.name, step.stage, status, time.monotonic() - started, error)
            self._notify(index, step, result)
            return result

        if self.is_done(step):
            return outcome(Status.SKIPPED)
        for path, content in step.files.items():
            result = self._run(step, "write", write_file_command(path, content))
            if not result.ok:
                return outcome(Status.FAILED, self._failure(step, f"writing {path}:", result))
        if step.reboot:
            error = self._reboot(step)
            return outcome(Status.FAILED, error) if error else outcome(Status.RAN)
        for cmd in step.commands:
            result = self._run(step, "command", cmd)
            if not result.ok:
                return outcome(Status.FAILED, self._failure(step, "command", result))
        if step.verify is not None:
            result = self._run(step, "verify", step.verify)
            if not result.ok:
                return outcome(Status.FAILED, self._failure(step, "verify", result))
        return outcome(Status.RAN)

    def _reboot(self, step: Step) -> str:
        """Runs the reboot commands, then waits for the check to pass; the error message, or ""."""
        for cmd in step.commands:
            self._run(step, "command", cmd, REBOOT_COMMAND_TIMEOUT_S)
        deadline = time.monotonic() + self.reboot_timeout
        while time.monotonic() < deadline:
            time.sleep(REBOOT_POLL_INTERVAL_S)
            if step.check is None or self._run(step, "check", step.check, REBOOT_COMMAND_TIMEOUT_S).ok:
                if step.verify is not None:
                    result = self._run(step, "verify", step.verify)
                    if not result.ok:
                        return self._failure(step, "verify", result)
                return ""
            if self.powered_off is not None and self.powered_off(self.host):
                return (
                    f"{self.host}: step '{step.name}' failed: the host was powered off during its reboot; "
                    f"start it again (`bst start {self.host}`) and rerun the plan"
                )
        return (
            f"{self.host}: step '{step.name}' failed: the host did not pass `{step.check}` "
            f"within {self.reboot_timeout:g} s of the reboot"
        )

    def apply(self, steps: Iterable[tuple[int, Step]]) -> list[StepOutcome]:
        outcomes = []
        for index, step in steps:
            outcomes.append(self.apply_step(index, step))
            if outcomes[-1].status is Status.FAILED:
                break
        return outcomes


def apply_plan(
    plan: Plan,
    runners: dict[str, Runner],
    label: str = "plan",
    on_step: OnStep | None = None,
    timeout: float = DEFAULT_COMMAND_TIMEOUT_S,
    reboot_timeout: float = DEFAULT_REBOOT_TIMEOUT_S,
    powered_off: PoweredOff | None = None,
) -> list[StepOutcome]:
    """Applies ``plan``; every host finishes stage N before any starts N+1. Raises ``StepFailed``.

    Every command is sent labelled ``command_label(label, host, step, phase)``; recording it is the runner's
    business. ``on_step`` sees each host start and finish each step. ``powered_off(host)`` lets a reboot step
    give up as soon as the provider knows the host is off, instead of polling it until ``reboot_timeout``.

    When a step fails, the other hosts of that stage still finish their steps (a half-run step on a
    storage controller is worse than a finished one); the error names the first failing host in plan order.
    """
    missing = [host for host, steps in plan.items() if steps and host not in runners]
    if missing:
        raise LabError(f"no connection to {', '.join(missing)}: the plan needs every host it names")
    ordered = {host: list(enumerate(sorted(steps, key=lambda s: s.stage), start=1)) for host, steps in plan.items()}
    outcomes: list[StepOutcome] = []
    for stage in stages(plan):
        work = {host: [(i, s) for i, s in steps if s.stage == stage] for host, steps in ordered.items()}
        work = {host: steps for host, steps in work.items() if steps}
        with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix=f"stage{stage}") as pool:
            futures = {
                host: pool.submit(
                    _HostApplier(host, runners[host], timeout, label, len(ordered[host]), on_step, reboot_timeout,
                                 powered_off).apply,
                    steps,
                )
                for host, steps in work.items()
            }
            results = {host: future.result() for host, future in futures.items()}
        for host in work:
            outcomes.extend(results[host])
        failed = [o for o in outcomes if o.status is Status.FAILED]
        if failed:
            raise StepFailed(failed[0].error, outcomes)
    return outcomes
