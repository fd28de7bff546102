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
    """

    name: str
    commands: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    check: str | None = None
    verify: str | None = None
    stage: int = 0

    def __post_init__(self) -> None:
        if self.commands and self.check is None:
            raise ValueError(f"step '{self.name}' runs commands but has no check: it would not be idempotent")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stage": self.stage,
            "files": dict(self.files),
            "commands": list(self.commands),
            "check": self.check,
            "verify": self.verify,
        }


Plan = dict[str, list[Step]]
"""Host name -> its steps in order."""


def plan_to_json(plan: Plan) -> dict[str, list[dict[str, Any]]]:
    return {host: [step.to_json() for step in steps] for host, steps in plan.items()}


def stages(plan: Plan) -> list[int]:
    """The stage numbers used by a plan, in execution order."""
    return sorted({step.stage for steps in plan.values() for step in steps})
