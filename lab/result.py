"""What came of one command on one host: the single shape every layer returns and the run record writes.

``remote.run``, every executor ``Runner`` and ``LabSession.run`` return a ``CommandResult``; the run
folder's commands.jsonl holds exactly its fields. A command that timed out or never ran has no exit code
(``None``): ``timed_out`` says which, and for one that never ran ``stderr`` says why.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    host: str = ""
    timed_out: bool = False
    started: float = 0.0
    """Epoch seconds when the command was sent."""
    label: str = ""
    """What sent it: a plan's ``plan:host:step:phase``, a drill step's query name."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def ending(self) -> str:
        """How it ended, for one-line messages: "exited 3", "did not finish within its timeout (5 s)",
        "could not run"."""
        if self.timed_out:
            return f"did not finish within its timeout ({self.duration_s:.0f} s)"
        if self.exit_code is None:
            return "could not run"
        return f"exited {self.exit_code}"

    def last_line(self) -> str:
        """The last line of stderr (else stdout): usually the reason a command failed."""
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else "no output"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def not_run(command: str, error: BaseException, host: str = "", started: float | None = None,
            label: str = "") -> CommandResult:
    """The result of a command whose host could not be reached: no exit code, the error as stderr."""
    began = time.time() if started is None else started
    return CommandResult(command, None, "", f"{type(error).__name__}: {error}", max(time.time() - began, 0.0),
                         host=host, started=began, label=label)
