"""The run folder's schema: what a drill writes and what ``report/`` and the matrix read.

Writers (the drill's orchestrator, ``RunRecord``) and readers (``lab.report``) share these types, so a
verdict reaches ``report.html`` and ``matrix.html`` as typed objects, never as prose to be parsed.
This module knows no drill, stack or provider: only the shape of the files.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.labdir import inside
from lab.runfolder_io import FileText, NotARegularFile, loads, read_text, replace_file

RESULTS_NAME = "results.json"
EVENTS_NAME = "events.jsonl"
MESSAGE_CHARS = 300
"""The most of a hand-edited value an error line repeats."""
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 3, 60, 60, 40


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


@dataclass(frozen=True)
class Event:
    """One line of ``events.jsonl``. ``kind`` is None for a kind this version does not know (a file from an
    older or newer drill): the line is kept, readers that follow the run's course pass over it."""

    kind: EventKind | None
    raw_kind: str
    ts: float | None
    t: float | None
    fields: dict[str, Any]
    """The line as written, ``ts``, ``t`` and ``kind`` included."""

    def text(self, key: str) -> str:
        """A field as text, "" when absent or empty."""
        value = self.fields.get(key)
        return "" if value is None else str(value)

    def number(self, key: str) -> float | None:
        return as_number(self.fields.get(key))

    @classmethod
    def from_json(cls, data: Any) -> Event:
        if not isinstance(data, dict):
            raise SchemaError(f"event {brief(data)} is not an object")
        raw = data.get("kind")
        known = raw in EventKind._value2member_map_ if isinstance(raw, str) else False
        return cls(kind=EventKind(raw) if known else None, raw_kind=str(raw) if raw is not None else "",
                   ts=as_number(data.get("ts")), t=as_number(data.get("t")), fields=data)


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
    NOT_MEASURED = "not-measured"
    """Nothing could judge it in this lab (e.g. a client with no fio)."""


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
            raise SchemaError(f"claim {brief(data)} is not an object with a claim name")
        try:
            return cls(claim=data["claim"], held=_typed(data, "held", bool), evidence=_typed(data, "evidence", str),
                       expectation=Expectation(data.get("expectation")),
                       reason=Reason(data.get("reason", Reason.CONFIRMED if data.get("held") else Reason.NOT_HELD)),
                       text=_typed(data, "text", str, ""), detail=_typed(data, "detail", str, ""),
                       excuse=_typed(data, "excuse", str, ""))
        except (ValueError, SchemaError) as error:
            raise SchemaError(f"claim {brief(data['claim'])}: {error}") from None


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class StepResult:
    """One step of a scenario as it ran. ``duration_s`` is None when the step failed before it was timed;
    ``ended_s`` is when it ended, in seconds since the run started (the events' ``t``), when known."""

    index: int
    name: str
    status: StepStatus
    duration_s: float | None
    error: str = ""
    ended_s: float | None = None

    @property
    def passed(self) -> bool:
        return self.status is StepStatus.PASSED

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}

    @classmethod
    def from_json(cls, data: Any) -> StepResult:
        if not isinstance(data, dict):
            raise SchemaError(f"step {brief(data)} is not an object")
        try:
            duration, ended = (_typed(data, key, (int, float, type(None)), None) for key in ("duration_s", "ended_s"))
            return cls(index=_typed(data, "index", int), name=_typed(data, "name", str),
                       status=StepStatus(data.get("status")), duration_s=as_number(duration),
                       error=_typed(data, "error", str, ""), ended_s=as_number(ended))
        except (ValueError, SchemaError) as error:
            raise SchemaError(f"step {brief(data.get('name'))}: {error}") from None


@dataclass(frozen=True)
class RunIdentity:
    """Which drill a run was: the part of ``results.json`` a reader can still show when the rest is damaged."""

    scenario: str = ""
    stack: str = ""
    fault: str = ""
    arbitrator: str = ""
    victim: str = ""

    @classmethod
    def from_json(cls, data: Any) -> RunIdentity:
        """Every identity field that holds text; the others empty (never raises)."""
        if not isinstance(data, dict):
            return cls()
        return cls(**{name: value for name in IDENTITY_FIELDS if isinstance(value := data.get(name), str)})


IDENTITY_FIELDS = ("scenario", "stack", "fault", "arbitrator", "victim")


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
    recorded_failed_steps: list[str] = field(default_factory=list)
    """Failed steps the file names that ``steps`` does not hold: a results.json from before ``steps`` only
    listed their names."""

    @property
    def identity(self) -> RunIdentity:
        return RunIdentity(self.scenario, self.stack, self.fault, self.arbitrator, self.victim)

    @property
    def failed_steps(self) -> list[str]:
        failed = [s.name for s in self.steps if s.status is StepStatus.FAILED]
        return failed + [name for name in self.recorded_failed_steps if name not in failed]

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
        """The typed results; SchemaError naming the first field that holds the wrong type. A file from before
        ``steps``, ``reason`` and ``detail`` loads with their defaults; its failed step names are kept."""
        if not isinstance(data, dict):
            raise SchemaError(f"it holds a JSON {type(data).__name__}, not an object")
        identity = {name: _typed(data, name, str, "") for name in IDENTITY_FIELDS}
        claims = [ClaimVerdict.from_json(c) for c in _typed(data, "claims", list, [])]
        steps = [StepResult.from_json(s) for s in _typed(data, "steps", list, [])]
        derived = {s.name for s in steps}
        recorded = [name for name in _names(data, "failed_steps") if name not in derived]
        _names(data, "unexpected")
        return cls(**identity, claims=claims, facts=_typed(data, "facts", dict, {}), steps=steps,
                   interrupted=bool(_typed(data, "interrupted", (bool, type(None)), False)),
                   recorded_failed_steps=recorded)

    def write(self, folder: Path) -> Path:
        """Write ``results.json`` into the run folder as a new file renamed over the old one: never through a
        symlink out of it, never into a hard link's other name; its path."""
        path = inside(Path(folder), Path(folder) / RESULTS_NAME)
        return replace_file(path.parent, path.name, (json.dumps(self.to_json(), indent=2, default=str) + "\n").encode())


def read_results(folder: Path) -> Results | None:
    """The run folder's ``results.json``; None when there is none (the run stopped before writing it),
    SchemaError saying what is wrong when it is damaged, hand-edited into other types, or not a file (a
    symlink or a FIFO is never followed or opened)."""
    try:
        contents = read_text(Path(folder), Path(folder) / RESULTS_NAME)
    except FileNotFoundError:
        return None
    except NotARegularFile as error:
        raise SchemaError(str(error)) from None
    except OSError as error:
        raise SchemaError(f"{RESULTS_NAME} cannot be read ({error.strerror or error})") from None
    return results_from_text(contents)


def results_from_text(contents: FileText) -> Results:
    """``results.json``'s text through the schema; SchemaError in one line naming what is wrong."""
    try:
        return Results.from_json(loads(contents.text))
    except ValueError as error:
        raise SchemaError(f"{RESULTS_NAME} is damaged ({shortened(str(error))}){contents.cut_note}; "
                          "run the drill again or restore the file") from None
    except SchemaError as error:
        raise SchemaError(f"{RESULTS_NAME} does not match the schema: {shortened(str(error))}") from None


def brief(value: Any) -> str:
    """A short repr of a hand-edited value for an error line, however long or deep it is."""
    return _BRIEF.repr(value)


def shortened(text: str, most: int = MESSAGE_CHARS) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


def _names(data: dict[str, Any], key: str) -> list[str]:
    names = _typed(data, key, list, [])
    if not all(isinstance(name, str) for name in names):
        raise SchemaError(f"{brief(key)} holds something other than names")
    return names


def as_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (a bool, an infinity, an integer too big for
    a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise SchemaError(f"{brief(key)} is missing")
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise SchemaError(f"{brief(key)} is a {type(value).__name__}, not a {names}")
    return value
