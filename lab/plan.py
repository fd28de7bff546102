"""A plan is data: per-host ordered steps that an executor applies. Stacks make plans; nothing here runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One idempotent unit of configuration on one host.

    ``check`` is a shell command that exits 0 when the step is already done (the executor then skips it);
    ``verify`` is a shell command that must exit 0 after the step ran (its result: pool ONLINE, session up).
    ``stage`` orders steps across hosts: every host finishes stage N before any host starts stage N+1,
    which is how the paper's "now on both controllers" barriers are expressed.
    ``reboot`` marks a step whose commands restart the host: the executor expects the connection to
    drop and waits until ``check`` passes again.
    """

    name: str
    commands: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    check: str | None = None
    verify: str | None = None
    stage: int = 0
    reboot: bool = False

    def __post_init__(self) -> None:
        if self.commands and self.check is None:
            raise ValueError(f"step '{self.name}' runs commands but has no check: it would not be idempotent")
        if self.reboot and not self.commands:
            raise ValueError(f"step '{self.name}' is a reboot but runs no command")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "files": dict(self.files),
            "commands": list(self.commands),
            "check": self.check,
            "verify": self.verify,
            "reboot": self.reboot,
        }


Plan = dict[str, list[Step]]
"""Host name -> its steps in order."""


def plan_to_json(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    return {host: [step.to_json() for step in steps] for host, steps in plan.items()}


def stages(plan: Plan) -> list[int]:
    """The stage numbers used by a plan, in execution order."""
    return sorted({step.stage for steps in plan.values() for step in steps})
