"""The run folder's schema: what a drill writes and what ``report/`` and the matrix read.

Writers (the drill's orchestrator, ``RunRecord``) and readers (``lab.report``) share these types, so a
verdict reaches ``report.html`` and ``matrix.html`` as typed objects, never as prose to be parsed.
This module knows no drill, stack or provider: only the shape of the files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lab.errors import LabError

RESULTS_NAME = "results.json"
EVENTS_NAME = "events.jsonl"


class SchemaError(LabError):
    """A run folder file holds something other than this schema says (damaged or hand-edited)."""


class EventKind(StrEnum):
    """Every kind of line ``events.jsonl`` holds."""

    RUN_START = "run-start"
    RUN_END = "run-end"
    LAB = "lab"
    INJECTIONS = "injections"
    INJECT = "inject"
    RESET = "reset"
    PROVISIONED = "provisioned"
    SNAPSHOT_SAVED = "snapshot-saved"
    SNAPSHOT_RESTORED = "snapshot-restored"
    SNAPSHOT_NOT_USED = "snapshot-not-used"
    RESUMED = "resumed"
    STEP_STARTED = "step-started"
    STEP_PASSED = "step-passed"
    STEP_FAILED = "step-failed"
    CLAIM = "claim"
    COPY_STARTED = "copy-started"
    FAULT = "fault"
    FAULT_UNDONE = "fault-undone"
    ACTION = "action"
    FENCE_POWER_OFF = "fence-power-off"
    FENCED = "fenced"
    FENCE_FAILED = "fence-failed"
    TAKEN_OVER = "taken-over"
    NAIVE_IMPORT = "naive-import"
    RECOVERY_INTERRUPTED = "recovery-interrupted"
    INTERRUPTED = "interrupted"
    REPORT_FAILED = "report-failed"
    LAB_KEPT = "lab-kept"
    LAB_REMOVED = "lab-removed"


class Expectation(StrEnum):
    """What the expectations file says a claim does in a stack × mode × fault."""

    HOLD = "hold"
    FAIL = "fail"
    MAYBE = "maybe"

    def accepts(self, held: bool) -> bool:
        return self is Expectation.MAYBE or (self is Expectation.HOLD) == held


class Reason(StrEnum):
    """Why a claim came out as it did, for readers that compare runs (the matrix) without reading prose."""

    CONFIRMED = "confirmed"
    """The claim held."""
    NOT_HELD = "not-held"
    """It did not hold; the evidence says how (no finer reason applies)."""
    COPY_FAILED = "copy-failed"
    COPY_STALLED = "copy-stalled"
    DATA_DIFFERS = "data-differs"
    DATA_UNREADABLE = "data-unreadable"
    POOL_MISSING = "pool-missing"
    POOL_ERRORS = "pool-errors"
    PATHS_FAILED = "paths-failed"
    RECOVERY_FAILED = "recovery-failed"
    DOUBLE_IMPORT = "double-import"
    IO_FAILED = "io-failed"


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim as a run judged it.

    ``detail`` is the short machine-usable part of the evidence (e.g. why the data could not be read:
    "wrong fs type"), ``excuse`` why a claim expected to hold could not hold in this run (an earlier claim
    it rests on failed); an excused claim may go either way."""

    claim: str
    held: bool
    evidence: str
    expectation: Expectation
    reason: Reason
    text: str = ""
    """The claim in words (what the paper says)."""
    detail: str = ""
    excuse: str = ""

    @property
    def effective_expectation(self) -> Expectation:
        return Expectation.MAYBE if self.excuse and self.expectation is Expectation.HOLD else self.expectation

    @property
    def expected(self) -> bool:
        return self.effective_expectation.accepts(self.held)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "expectation": str(self.expectation), "reason": str(self.reason),
                "expected": self.expected}

    @classmethod
    def from_json(cls, data: Any) -> ClaimVerdict:
        if not isinstance(data, dict) or not isinstance(data.get("claim"), str):
            raise SchemaError(f"claim {data!r} is not an object with a claim name")
        try:
            return cls(claim=data["claim"], held=_typed(data, "held", bool), evidence=_typed(data, "evidence", str),
                       expectation=Expectation(data.get("expectation")),
                       reason=Reason(data.get("reason", Reason.CONFIRMED if data.get("held") else Reason.NOT_HELD)),
                       text=_typed(data, "text", str, ""), detail=_typed(data, "detail", str, ""),
                       excuse=_typed(data, "excuse", str, ""))
        except ValueError as error:
            raise SchemaError(f"claim {data['claim']!r}: {error}") from None


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class StepResult:
    """One step of a scenario as it ran."""

    index: int
    name: str
    status: StepStatus
    duration_s: float
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}

    @classmethod
    def from_json(cls, data: Any) -> StepResult:
        if not isinstance(data, dict):
            raise SchemaError(f"step {data!r} is not an object")
        try:
            return cls(index=_typed(data, "index", int), name=_typed(data, "name", str),
                       status=StepStatus(data.get("status")),
                       duration_s=float(_typed(data, "duration_s", (int, float))), error=_typed(data, "error", str, ""))
        except ValueError as error:
            raise SchemaError(f"step {data.get('name')!r}: {error}") from None


@dataclass
class Results:
    """``results.json``: one drill's verdicts, facts and steps."""

    scenario: str
    stack: str
    fault: str
    arbitrator: str
    victim: str
    claims: list[ClaimVerdict] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed_steps(self) -> list[str]:
        return [s.name for s in self.steps if s.status is StepStatus.FAILED]

    @property
    def unexpected(self) -> list[str]:
        return [c.claim for c in self.claims if not c.expected]

    def claim(self, name: str) -> ClaimVerdict | None:
        return next((c for c in self.claims if c.claim == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "stack": self.stack, "fault": self.fault, "arbitrator": self.arbitrator,
                "victim": self.victim, "claims": [c.to_json() for c in self.claims], "facts": self.facts,
                "steps": [s.to_json() for s in self.steps], "failed_steps": self.failed_steps,
                "interrupted": self.interrupted, "unexpected": self.unexpected}

    @classmethod
    def from_json(cls, data: Any) -> Results:
        """The typed results; SchemaError naming the first field that holds the wrong type."""
        if not isinstance(data, dict):
            raise SchemaError(f"it holds a JSON {type(data).__name__}, not an object")
        claims = _typed(data, "claims", list, [])
        steps = _typed(data, "steps", list, [])
        return cls(scenario=_typed(data, "scenario", str, ""), stack=_typed(data, "stack", str, ""),
                   fault=_typed(data, "fault", str, ""), arbitrator=_typed(data, "arbitrator", str, ""),
                   victim=_typed(data, "victim", str, ""), claims=[ClaimVerdict.from_json(c) for c in claims],
                   facts=_typed(data, "facts", dict, {}), steps=[StepResult.from_json(s) for s in steps],
                   interrupted=bool(_typed(data, "interrupted", (bool, type(None)), False)))


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise SchemaError(f"{key!r} is missing")
        return default
    value = data[key]
    if not isinstance(value, kind) or (kind in (int, (int, float)) and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SchemaError(f"{key!r} is a {type(value).__name__}, not a {names}")
    return value
