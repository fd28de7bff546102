"""Each file of a run folder read on its own, whatever state it was left in: events.jsonl, probe.log and the
saved ``zpool status`` texts, and the step and claim verdicts an interrupted run left only in its events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.drill.probe import ProbeSample, parse_probe_log
from lab.errors import LabError, ParseError
from lab.parsers.zpool import PoolStatus, parse_zpool_status
from lab.runfolder import EVENTS_NAME, RESULTS_NAME, ClaimVerdict, Event, EventKind, SchemaError, StepResult, StepStatus


@dataclass(frozen=True)
class PoolFile:
    """One saved ``zpool status``; ``pools`` is None when the text did not parse and is shown raw."""

    name: str
    text: str
    pools: tuple[PoolStatus, ...] | None
    problem: str = ""


def steps_from_events(events: list[Event]) -> list[StepResult]:
    """One verdict per drill step, in the order they ran; a step that failed in any phase failed."""
    steps: dict[str, StepResult] = {}
    for event in events:
        name = event.text("step")
        if event.kind not in (EventKind.STEP_PASSED, EventKind.STEP_FAILED) or not name:
            continue
        previous = steps.get(name)
        index = previous.index if previous else len(steps)
        if event.kind is EventKind.STEP_PASSED:
            if previous is None:
                steps[name] = StepResult(index, name, StepStatus.PASSED, event.number("duration"), "", event.t)
            continue
        error, when = event.text("error"), event.text("when")
        if when and when != "call":
            error = f"[{when}] {error}"
        if previous is not None and not previous.passed:
            error = f"{previous.error}; {error}"
        steps[name] = StepResult(index, name, StepStatus.FAILED, previous.duration_s if previous else None, error,
                                 previous.ended_s if previous else event.t)
    return list(steps.values())


def claims_from_events(events: list[Event]) -> tuple[list[ClaimVerdict], int]:
    """The claim events as verdicts, and how many did not match the schema (left out)."""
    claims, unreadable = [], 0
    for event in events:
        if event.kind is EventKind.CLAIM:
            try:
                claims.append(ClaimVerdict.from_json(event.fields))
            except SchemaError:
                unreadable += 1
    return claims, unreadable


def read_events(path: Path) -> tuple[list[Event], int]:
    """Every event line that parses, and how many did not (a run killed mid-write tears its last line)."""
    events, damaged = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(json.loads(line)))
        except (json.JSONDecodeError, SchemaError):
            damaged += 1
    return events, damaged


def read_probe(text: str) -> tuple[list[ProbeSample], int]:
    """Every sample that parses: a probe killed mid-write leaves a torn last line, which should not hide the rest."""
    try:
        return parse_probe_log(text), 0
    except ParseError:
        samples, damaged = [], 0
        for line in text.splitlines():
            try:
                samples += parse_probe_log(line)
            except ParseError:
                damaged += 1
        return samples, damaged


def read_pool_file(path: Path) -> PoolFile:
    text = path.read_text(errors="replace")
    try:
        return PoolFile(path.stem, text, tuple(parse_zpool_status(text)))
    except (LabError, KeyError, ValueError, IndexError) as error:
        return PoolFile(path.stem, text, None, str(error) or type(error).__name__)


def check_run_folder(folder: Path) -> Path:
    """``folder`` resolved, once it is a run folder a drill wrote; LabError otherwise, so a report is never
    written into a directory that is not a run's (``bst report ~``)."""
    resolved = Path(folder).resolve()
    if not resolved.is_dir():
        raise LabError(f"no run folder at {folder}; pass one of the folders under artifacts/")
    events = resolved / EVENTS_NAME
    started = False
    if events.is_file() and not events.is_symlink():
        with open(events, "rb") as handle:
            first = handle.readline(4096)
        try:
            started = json.loads(first).get("kind") == EventKind.RUN_START
        except (ValueError, AttributeError):
            started = False
    results = resolved / RESULTS_NAME
    if not started and not (results.is_file() and not results.is_symlink()):
        raise LabError(f"{folder} is not a run folder (it has no results.json, and no events.jsonl starting with "
                       "run-start); pass one of the folders a drill made under artifacts/")
    return resolved


def json_or_none(path: Path) -> Any:
    """The file's JSON, or None when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return None
