"""Each file of a run folder read on its own, whatever state it was left in: events.jsonl, probe.log and the
saved ``zpool status`` texts, and the step and claim verdicts an interrupted run left only in its events."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError, ParseError
from lab.parsers.fio import LatencySample, parse_latency_log
from lab.parsers.probe import ProbeSample, parse_probe_log
from lab.parsers.zpool import PoolStatus, parse_zpool_status
from lab.runfolder import EVENTS_NAME, RESULTS_NAME, ClaimVerdict, Event, EventKind, SchemaError, StepResult, StepStatus
from lab.runfolder_io import NotARegularFile, kind_of, loads, read_bytes, read_text


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


def read_events(text: str) -> tuple[list[Event], int]:
    """Every event line that parses, and how many did not (a run killed mid-write tears its last line)."""
    events, damaged = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(loads(line)))
        except (ValueError, SchemaError):
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


def read_fio_log(text: str) -> tuple[list[LatencySample], int, str]:
    """Every I/O that parses, how many lines did not, and the first line's problem: a fio killed mid-write
    (or a log cut at the size limit) tears its last line, which should not hide the rest."""
    try:
        return parse_latency_log(text), 0, ""
    except ParseError as error:
        first = str(error)
    samples, damaged = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            samples += parse_latency_log(line)
        except ParseError:
            damaged += 1
    return sorted(samples, key=lambda s: s.completed), damaged, first


def read_pool_file(name: str, text: str) -> PoolFile:
    try:
        return PoolFile(name, text, tuple(parse_zpool_status(text)))
    except (LabError, KeyError, ValueError, IndexError, RecursionError) as error:
        return PoolFile(name, text, None, str(error) or type(error).__name__)


def check_run_folder(folder: Path) -> Path:
    """``folder`` resolved, once it is a run folder a drill wrote; LabError otherwise, so a report is never
    written into a directory that is not a run's (``bst report ~``). Its files are looked at, never followed
    through a link or opened when they are not files."""
    try:
        resolved = Path(folder).resolve()
        is_dir = resolved.is_dir()
    except (OSError, RuntimeError) as error:
        raise LabError(f"{folder} cannot be followed ({getattr(error, 'strerror', None) or error}); it may be a "
                       "symlink loop: point it at a run folder under artifacts/ or pass one") from None
    if not is_dir:
        raise LabError(f"no run folder at {folder}; pass one of the folders under artifacts/")
    try:
        first = read_bytes(resolved, resolved / EVENTS_NAME, 4096)[0].split(b"\n", 1)[0]
        started = loads(first.decode("utf-8", errors="replace")).get("kind") == EventKind.RUN_START
    except (OSError, ValueError, AttributeError, NotARegularFile):
        started = False
    if not started and not _is_file(resolved / RESULTS_NAME):
        raise LabError(f"{folder} is not a run folder (it has no results.json, and no events.jsonl starting with "
                       "run-start); pass one of the folders a drill made under artifacts/")
    return resolved


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def json_or_none(folder: Path, name: str) -> Any:
    """The JSON of the run folder's file ``name``, or None when it cannot be read or parsed."""
    try:
        return loads(read_text(folder, folder / name).text)
    except (OSError, ValueError, NotARegularFile):
        return None


def not_a_file(folder: Path, name: str) -> str:
    """Why ``name`` (a directory expected to hold files) is not read: "" when it is a real directory."""
    try:
        mode = os.lstat(folder / name).st_mode
    except OSError:
        return ""
    return "" if stat.S_ISDIR(mode) else f"{name} is {kind_of(mode)}, not a directory; it is not read"
