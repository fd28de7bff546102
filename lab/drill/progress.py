"""What a drill shows while it runs: the current step, what it is doing, each host's plan step, time.

``LiveProgress`` redraws one rich panel in place (an interactive terminal); ``LineProgress`` prints one line
per step (CI, a pipe, a log file); ``QuietProgress`` shows nothing. The orchestrator calls the same methods
on each.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from lab.executor import StepEvent
from lab.runfolder import Results, StepResult, StepStatus


class QuietProgress:
    """Shows nothing (a drill run by code that reports on its own, e.g. the benchmarks)."""

    @contextmanager
    def showing(self) -> Iterator[None]:
        """While the body runs, the display may redraw (outside it, others may write to the terminal)."""
        yield

    def opened(self, label: str, steps: int, folder: Path) -> None: ...

    def step_started(self, number: int, step_id: str) -> None: ...

    def doing(self, text: str) -> None: ...

    def plan_step(self, event: StepEvent) -> None: ...

    def step_ended(self, result: StepResult) -> None: ...

    def closed(self, results: Results, folder: Path) -> None: ...


Progress = QuietProgress
"""The methods the orchestrator calls (every display implements them)."""


def _verdict(result: StepResult) -> str:
    return "passed" if result.status is StepStatus.PASSED else f"FAILED: {result.error.splitlines()[0][:200]}"


class LineProgress(QuietProgress):
    """One line when a step starts and one when it ends, through ``write`` (pytest's terminal reporter)."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.label = ""
        self.steps = 0
        self.started = time.monotonic()

    def opened(self, label: str, steps: int, folder: Path) -> None:
        self.label, self.steps, self.started = label, steps, time.monotonic()
        self.write(f"[drill {label}] run folder {folder}")

    def step_started(self, number: int, step_id: str) -> None:
        self.write(f"[drill {self.label}] {self._elapsed()} step {number}/{self.steps} {step_id}")

    def step_ended(self, result: StepResult) -> None:
        self.write(f"[drill {self.label}] {self._elapsed()} step {result.index}/{self.steps} {_verdict(result)} "
                   f"({result.duration_s:.0f} s)")

    def closed(self, results: Results, folder: Path) -> None:
        unexpected = ", ".join(results.unexpected) or "none"
        self.write(f"[drill {self.label}] {self._elapsed()} done: {len(results.claims)} claims, unexpected: "
                   f"{unexpected}; report {folder / 'report.html'}")

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"


class LiveProgress(LineProgress):
    """A panel redrawn in place: the step, what it is doing now (copy bytes, the recovery plan), each host's
    current plan step and count, elapsed time; finished steps scroll above it as lines."""

    def __init__(self, console: Console):
        super().__init__(lambda text: console.print(text, markup=False, highlight=False))
        self.console = console
        self.current = "setting up the lab"
        self.activity = ""
        self.hosts: dict[str, str] = {}

    @contextmanager
    def showing(self) -> Iterator[None]:
        with Live(console=self.console, refresh_per_second=2, transient=True, get_renderable=self._render):
            yield

    def step_started(self, number: int, step_id: str) -> None:
        self.current, self.activity, self.hosts = f"step {number}/{self.steps} {step_id}", "", {}

    def doing(self, text: str) -> None:
        self.activity = text

    def plan_step(self, event: StepEvent) -> None:
        self.hosts[event.host] = f"plan step {event.index}/{event.total} {event.step} ({event.status})"

    def _render(self) -> Any:
        lines = [Text.from_markup(f"[bold]{escape(self.label)}[/] {self._elapsed()}  {escape(self.current)}")]
        if self.activity:
            lines.append(Text(f"  {self.activity}"))
        lines += [Text(f"  {host}: {state}") for host, state in sorted(self.hosts.items())]
        return Group(*lines)
