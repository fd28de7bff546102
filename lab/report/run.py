"""A run folder read as it was left, complete or interrupted: any piece may be missing or damaged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.drill.probe import ProbeSample, Stall, longest_stall, parse_probe_log
from lab.errors import LabError, ParseError
from lab.parsers.zpool import PoolStatus, parse_zpool_status

NOT_RECORDED = "not recorded"
CLOCK_TOLERANCE_S = 15.0


def utc_text(epoch: float | None) -> str:
    if epoch is None:
        return NOT_RECORDED
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Step:
    name: str
    passed: bool
    duration: float | None
    error: str
    t: float | None


@dataclass(frozen=True)
class PoolFile:
    """One saved ``zpool status``; ``pools`` is None when the text did not parse and is shown raw."""

    name: str
    text: str
    pools: tuple[PoolStatus, ...] | None
    problem: str = ""


@dataclass(frozen=True)
class ClockCheck:
    """Whether probe times (guest clock) can be drawn against event times (host clock) as they are."""

    close: bool
    offset_s: float | None
    note: str


@dataclass
class RunView:
    folder: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    damaged_event_lines: int = 0
    results: dict[str, Any] | None = None
    results_problem: str = NOT_RECORDED
    probe: list[ProbeSample] | None = None
    probe_problem: str = NOT_RECORDED
    damaged_probe_lines: int = 0
    pool_files: list[PoolFile] = field(default_factory=list)

    def _first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("kind") == kind), None)

    def _event_ts(self, kind: str) -> float | None:
        event = self._first(kind)
        return _number(event.get("ts")) if event else None

    @property
    def scenario(self) -> str:
        if self.results and self.results.get("scenario"):
            return str(self.results["scenario"])
        start = self._first("run-start")
        return str(start.get("scenario")) if start and start.get("scenario") else self.folder.name

    def lab_field(self, name: str) -> str:
        """A field results.json or the "lab" event recorded (fault, arbitrator, victim, stack)."""
        if self.results and self.results.get(name):
            return str(self.results[name])
        lab = self._first("lab")
        return str(lab.get(name)) if lab and lab.get(name) else NOT_RECORDED

    @property
    def stack(self) -> str:
        if self.results and self.results.get("stack"):
            return str(self.results["stack"])
        lab = self._first("lab")
        return str(lab.get("stack")) if lab and lab.get("stack") else NOT_RECORDED

    @property
    def provider(self) -> str:
        lab = self._first("lab")
        return str(lab.get("provider")) if lab and lab.get("provider") else NOT_RECORDED

    @property
    def started(self) -> float | None:
        if (start := self._event_ts("run-start")) is not None:
            return start
        return _number(self.events[0].get("ts")) if self.events else None

    @property
    def ended(self) -> float | None:
        return self._event_ts("run-end")

    @property
    def interrupted(self) -> bool:
        """The run stopped before its end (no run-end), or was stopped by Ctrl-C and only tidied up."""
        return self.ended is None or any(e.get("kind") == "interrupted" for e in self.events)

    @property
    def last_seen(self) -> float | None:
        stamps = [ts for e in self.events if (ts := _number(e.get("ts"))) is not None]
        return max(stamps) if stamps else None

    @property
    def duration(self) -> float | None:
        end = self.ended or self.last_seen
        return round(end - self.started, 1) if end is not None and self.started is not None else None

    @property
    def steps(self) -> list[Step]:
        """One verdict per drill step, in the order they ran; a step that failed in any phase failed."""
        steps: dict[str, Step] = {}
        for event in self.events:
            kind = event.get("kind")
            if kind not in ("step-passed", "step-failed") or not event.get("step"):
                continue
            name = str(event["step"])
            previous = steps.get(name)
            if kind == "step-passed":
                if previous is None:
                    steps[name] = Step(name, True, _number(event.get("duration")), "", _number(event.get("t")))
                continue
            error = str(event.get("error") or "")
            when = event.get("when")
            if when and when != "call":
                error = f"[{when}] {error}"
            if previous is not None and not previous.passed:
                error = f"{previous.error}; {error}"
            steps[name] = Step(name, False, previous.duration if previous else None, error,
                               previous.t if previous else _number(event.get("t")))
        return list(steps.values())

    @property
    def claims_source(self) -> str:
        if self.results is not None and isinstance(self.results.get("claims"), list):
            return "results.json"
        return "events.jsonl"

    @property
    def claims(self) -> list[dict[str, Any]]:
        """results.json's claims; from an interrupted run, the claim events it recorded before it stopped."""
        if self.claims_source == "results.json":
            return [c for c in self.results["claims"] if isinstance(c, dict)]
        return [{k: v for k, v in e.items() if k not in ("ts", "t", "kind")}
                for e in self.events if e.get("kind") == "claim"]

    @property
    def facts(self) -> dict[str, Any]:
        facts = self.results.get("facts") if self.results else None
        return facts if isinstance(facts, dict) else {}

    @property
    def failed_steps(self) -> list[str]:
        if self.results and isinstance(self.results.get("failed_steps"), list):
            return [str(s) for s in self.results["failed_steps"]]
        return [s.name for s in self.steps if not s.passed]

    @property
    def unexpected(self) -> list[str]:
        if self.results and isinstance(self.results.get("unexpected"), list):
            return [str(c) for c in self.results["unexpected"]]
        return [str(c.get("claim")) for c in self.claims if c.get("expected") is False]

    @property
    def fault_at(self) -> float | None:
        """Host clock: the fault event, or the drill's fact when the event is missing."""
        return self._event_ts("fault") or _number(self.facts.get("fault_at"))

    @property
    def fault_host(self) -> str:
        fault = self._first("fault")
        return str(fault.get("host")) if fault and fault.get("host") else NOT_RECORDED

    @property
    def copy_started_at(self) -> float | None:
        return self._event_ts("copy-started") or _number(self.facts.get("copy_started"))

    @property
    def stall(self) -> Stall | None:
        return longest_stall(self.probe) if self.probe else None

    def clock_check(self) -> ClockCheck:
        """Compare the probe's first start (guest) with the copy start (host): the drill starts both together."""
        if not self.probe:
            return ClockCheck(False, None, "no probe samples")
        first = min(s.started for s in self.probe)
        if self.copy_started_at is not None:
            offset = round(first - self.copy_started_at, 1)
            if abs(offset) <= CLOCK_TOLERANCE_S:
                return ClockCheck(True, offset, f"guest and host clocks agree within {CLOCK_TOLERANCE_S:.0f} s")
            return ClockCheck(False, offset, f"guest clock is {offset:+.0f} s off the host's")
        if self.started is not None and self.last_seen is not None:
            last = max(s.finished for s in self.probe)
            inside = (self.started - CLOCK_TOLERANCE_S <= first and last <= self.last_seen + CLOCK_TOLERANCE_S)
            if inside:
                return ClockCheck(True, None, "probe times fall inside the run (no copy-started event to compare)")
            return ClockCheck(False, None, "probe times fall outside the run: guest and host clocks differ")
        return ClockCheck(False, None, "no host times to compare the guest clock with")

    def fault_window(self) -> tuple[float, float | None] | None:
        """From the fault (host clock) to the first successful probe that finished after it (None: none did)."""
        fault = self.fault_at
        if fault is None or not self.probe:
            return None
        resumed = [s.finished for s in self.probe if s.ok and s.finished > fault]
        return fault, (min(resumed) if resumed else None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    events, damaged = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            damaged += 1
            continue
        if isinstance(entry, dict):
            events.append(entry)
        else:
            damaged += 1
    return events, damaged


def _read_probe(text: str) -> tuple[list[ProbeSample], int]:
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


def _read_pool_file(path: Path) -> PoolFile:
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
    events = resolved / "events.jsonl"
    started = False
    if events.is_file() and not events.is_symlink():
        with open(events, "rb") as handle:
            first = handle.readline(4096)
        try:
            started = json.loads(first).get("kind") == "run-start"
        except (ValueError, AttributeError):
            started = False
    results = resolved / "results.json"
    if not started and not (results.is_file() and not results.is_symlink()):
        raise LabError(f"{folder} is not a run folder (it has no results.json, and no events.jsonl starting with "
                       "run-start); pass one of the folders a drill made under artifacts/")
    return resolved


def load_run(folder: Path) -> RunView:
    """Whatever the run left; never raises for a missing or damaged piece, it notes it instead."""
    run = RunView(Path(folder))
    events_path = run.folder / "events.jsonl"
    if events_path.is_file():
        run.events, run.damaged_event_lines = _read_events(events_path)
    results_path = run.folder / "results.json"
    if results_path.is_file():
        try:
            data = json.loads(results_path.read_text(errors="replace"))
        except json.JSONDecodeError as error:
            run.results_problem = f"results.json is damaged ({error})"
        else:
            if isinstance(data, dict):
                run.results, run.results_problem = data, ""
            else:
                run.results_problem = "results.json is not an object"
    probe_path = run.folder / "probe.log"
    if probe_path.is_file():
        run.probe, run.damaged_probe_lines = _read_probe(probe_path.read_text(errors="replace"))
        run.probe_problem = "" if run.probe else "probe.log has no samples"
    zpool_dir = run.folder / "zpool"
    if zpool_dir.is_dir():
        run.pool_files = [_read_pool_file(p) for p in sorted(zpool_dir.glob("*.txt"))]
    return run
