"""A run folder read as it was left, complete or interrupted: any piece may be missing or damaged."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.parsers.fio import LatencySample
from lab.parsers.fio_stall import FaultStall, stall_from_fault
from lab.parsers.probe import ProbeSample, Stall, longest_stall
from lab.report.files import (
    PoolFile,
    check_run_folder,
    claims_from_events,
    json_or_none,
    not_a_file,
    read_events,
    read_fio_log,
    read_pool_file,
    read_probe,
    steps_from_events,
)
from lab.report.timebase import CLOCKS_NAME, ClockReading, TimeBase, choose_time_base, read_clocks
from lab.runfolder import (
    EVENTS_NAME,
    RESULTS_NAME,
    ClaimVerdict,
    Event,
    EventKind,
    Results,
    RunIdentity,
    SchemaError,
    StepResult,
    as_number,
    read_results,
    shortened,
)
from lab.runfolder_io import MAX_READ_BYTES, NotARegularFile, read_text

__all__ = ["NOT_RECORDED", "ClockCheck", "PoolFile", "RunView", "check_run_folder", "load_run", "utc_text"]

NOT_RECORDED = "not recorded"
CLOCK_TOLERANCE_S = 15.0
RUN_MARGIN_S = 60.0
"""How far outside the run's events fio's shifted times may fall before the time base is doubted."""
FIO_LOG_NAME = "fio/beast_lat.1.log"
FIO_LOG_MAX_BYTES = 16 * 1024 * 1024
"""A line per I/O is about 40 bytes: some 400,000 I/Os, several minutes of the drill's write pass."""


def utc_text(epoch: float | None) -> str:
    if epoch is None:
        return NOT_RECORDED
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{shortened(repr(epoch), 40)} (not a time this reader can show)"


@dataclass(frozen=True)
class ClockCheck:
    """Whether probe times (guest clock) can be drawn against event times (host clock) as they are."""

    close: bool
    offset_s: float | None
    note: str


@dataclass
class RunView:
    """The run folder through the schema's types: ``results`` when results.json matched it, and otherwise
    what events.jsonl recorded (an interrupted run's claim and step events)."""

    folder: Path
    events: list[Event] = field(default_factory=list)
    damaged_event_lines: int = 0
    results: Results | None = None
    results_problem: str = NOT_RECORDED
    identity: RunIdentity = field(default_factory=RunIdentity)
    """What results.json says of the run even when the rest of it is damaged."""
    probe: list[ProbeSample] | None = None
    probe_problem: str = NOT_RECORDED
    damaged_probe_lines: int = 0
    fio: list[LatencySample] | None = None
    """fio's latency log, client clock; None when the run folder has none."""
    fio_problem: str = NOT_RECORDED
    damaged_fio_lines: int = 0
    clocks: list[ClockReading] = field(default_factory=list)
    damaged_clock_lines: int = 0
    pool_files: list[PoolFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What was not read, or read only in part, and why (a symlink, a FIFO, a file too long)."""

    def _first(self, kind: EventKind) -> Event | None:
        return next((e for e in self.events if e.kind is kind), None)

    def _event_ts(self, kind: EventKind) -> float | None:
        event = self._first(kind)
        return event.ts if event else None

    def _event_text(self, kind: EventKind, name: str) -> str:
        event = self._first(kind)
        return (event.text(name) if event else "") or NOT_RECORDED

    @property
    def unknown_event_kinds(self) -> list[str]:
        """Kinds of event lines this version does not know: kept in ``events``, read by nothing."""
        return list(dict.fromkeys(e.raw_kind for e in self.events if e.kind is None))

    @property
    def scenario(self) -> str:
        if self.identity.scenario:
            return self.identity.scenario
        scenario = self._event_text(EventKind.RUN_START, "scenario")
        return scenario if scenario != NOT_RECORDED else self.folder.name

    def lab_field(self, name: str) -> str:
        """A field results.json or the "lab" event recorded (fault, arbitrator, victim, stack)."""
        return getattr(self.identity, name) or self._event_text(EventKind.LAB, name)

    @property
    def stack(self) -> str:
        return self.lab_field("stack")

    @property
    def provider(self) -> str:
        return self._event_text(EventKind.LAB, "provider")

    @property
    def started(self) -> float | None:
        if (start := self._event_ts(EventKind.RUN_START)) is not None:
            return start
        return self.events[0].ts if self.events else None

    @property
    def ended(self) -> float | None:
        return self._event_ts(EventKind.RUN_END)

    @property
    def interrupted(self) -> bool:
        """The run stopped before its end (no run-end), or was stopped by Ctrl-C and only tidied up."""
        return self.ended is None or self._first(EventKind.INTERRUPTED) is not None

    @property
    def last_seen(self) -> float | None:
        stamps = [e.ts for e in self.events if e.ts is not None]
        return max(stamps) if stamps else None

    @property
    def duration(self) -> float | None:
        end = self.ended or self.last_seen
        return round(end - self.started, 1) if end is not None and self.started is not None else None

    @property
    def steps(self) -> list[StepResult]:
        """results.json's steps; from a run without them, the step events, in the order the steps ran."""
        if self.results is not None and self.results.steps:
            return self.results.steps
        return steps_from_events(self.events)

    @property
    def claims_source(self) -> str:
        return RESULTS_NAME if self.results is not None else EVENTS_NAME

    @property
    def claims(self) -> list[ClaimVerdict]:
        """results.json's claims; from an interrupted run, the claim events it recorded before it stopped."""
        if self.results is not None:
            return self.results.claims
        return claims_from_events(self.events)[0]

    @property
    def unreadable_claim_events(self) -> int:
        return 0 if self.results is not None else claims_from_events(self.events)[1]

    @property
    def facts(self) -> dict[str, Any]:
        return self.results.facts if self.results is not None else {}

    @property
    def failed_steps(self) -> list[str]:
        failed = self.results.failed_steps if self.results is not None else []
        return failed + [s.name for s in self.steps if not s.passed and s.name not in failed]

    @property
    def unexpected(self) -> list[str]:
        return self.results.unexpected if self.results is not None else [c.claim for c in self.claims
                                                                         if not c.expected]

    @property
    def fault_at(self) -> float | None:
        """Host clock: the fault event, or the drill's fact when the event is missing."""
        return self._event_ts(EventKind.FAULT) or as_number(self.facts.get("fault_at"))

    @property
    def fault_host(self) -> str:
        return self._event_text(EventKind.FAULT, "host")

    @property
    def copy_started_at(self) -> float | None:
        return self._event_ts(EventKind.COPY_STARTED) or as_number(self.facts.get("copy_started"))

    @property
    def stall(self) -> Stall | None:
        return longest_stall(self.probe) if self.probe else None

    @property
    def workload(self) -> str:
        """"fio" or "probe": the results' fact, else what the folder holds."""
        recorded = self.facts.get("workload")
        if isinstance(recorded, str) and recorded:
            return recorded
        return "fio" if self.fio else "probe"

    def time_base(self) -> TimeBase | None:
        """How fio's client times become host times (clocks.jsonl, else the drill's facts)."""
        return choose_time_base(self.clocks, self.facts, self.fault_at)

    def time_base_doubt(self) -> str:
        """Why the time base is not used although there is one: it places fio's I/Os outside the run (an
        offset of the wrong sign, or another host's reading); "" when it is plausible or cannot be checked."""
        base, start, end = self.time_base(), self.started, self.ended or self.last_seen
        if base is None or not self.fio or start is None or end is None:
            return ""
        first, last = self.fio[0].completed + base.offset_s, self.fio[-1].completed + base.offset_s
        if start - RUN_MARGIN_S <= first and last <= end + RUN_MARGIN_S:
            return ""
        return (f"the offset {base.offset_s:+.3f} s places fio's I/Os from {utc_text(first)} to {utc_text(last)}, "
                f"outside the run ({utc_text(start)} to {utc_text(end)}): they are left on the client's clock")

    def placed_time_base(self) -> TimeBase | None:
        """The time base when it is there and plausible."""
        return None if self.time_base_doubt() else self.time_base()

    def fio_stall(self) -> tuple[FaultStall, TimeBase] | None:
        """From the fault to fio's first completion after it, on the host's clock; None without a fault, a
        plausible time base or fio samples. The FaultStall's times are host times."""
        base, fault = self.placed_time_base(), self.fault_at
        if not self.fio or base is None or fault is None:
            return None
        stall = stall_from_fault(self.fio, fault - base.offset_s, until=self._fio_end())
        shift = base.offset_s
        return FaultStall(fault, _shifted(stall.last_before, shift), stall.resumed_from + shift,
                          _shifted(stall.first_after, shift), stall.seconds, stall.ongoing, stall.longest), base

    def _fio_end(self) -> float | None:
        return max(s.completed for s in self.fio) if self.fio else None

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


def _shifted(epoch: float | None, offset: float) -> float | None:
    return None if epoch is None else epoch + offset


def _read(run: RunView, relative: str, limit: int = MAX_READ_BYTES) -> str | None:
    """A file of the run folder as text; None when it is missing or not read (why is noted in ``skipped``)."""
    try:
        contents = read_text(run.folder, run.folder / relative, limit)
    except FileNotFoundError:
        return None
    except NotARegularFile as error:
        run.skipped.append(str(error))
        return None
    except OSError as error:
        run.skipped.append(f"{relative} cannot be read ({error.strerror or error}); it is not read")
        return None
    if contents.cut:
        run.skipped.append(f"{relative} is longer than {limit // (1024 * 1024)} MiB: only its start was read")
    return contents.text


def load_run(folder: Path) -> RunView:
    """Whatever the run left; never raises for a missing, damaged or hostile piece, it notes it instead."""
    run = RunView(Path(folder))
    if (events := _read(run, EVENTS_NAME)) is not None:
        run.events, run.damaged_event_lines = read_events(events)
    try:
        run.results = read_results(run.folder)
    except SchemaError as error:
        run.results_problem = str(error)
        run.identity = RunIdentity.from_json(json_or_none(run.folder, RESULTS_NAME))
    else:
        if run.results is not None:
            run.results_problem, run.identity = "", run.results.identity
    if (probe := _read(run, "probe.log")) is not None:
        run.probe, run.damaged_probe_lines = read_probe(probe)
        run.probe_problem = "" if run.probe else "probe.log has no samples"
    _load_fio(run)
    if why := not_a_file(run.folder, "zpool"):
        run.skipped.append(why)
    elif (run.folder / "zpool").is_dir():
        try:
            names = sorted(entry.name for entry in os.scandir(run.folder / "zpool") if entry.name.endswith(".txt"))
        except OSError as error:
            names = []
            run.skipped.append(f"zpool cannot be listed ({error.strerror or error}); it is not read")
        run.pool_files = [read_pool_file(Path(name).stem, text) for name in names
                          if (text := _read(run, f"zpool/{name}")) is not None]
    return run


def _load_fio(run: RunView) -> None:
    """fio's latency log and the clock readings that place it on the host's clock."""
    noted = len(run.skipped)
    if (log := _read(run, FIO_LOG_NAME, FIO_LOG_MAX_BYTES)) is not None:
        run.fio, run.damaged_fio_lines, problem = read_fio_log(log)
        run.fio_problem = "" if run.fio else f"{FIO_LOG_NAME} has no I/O that parses ({problem})"
    elif len(run.skipped) > noted:
        run.fio_problem = run.skipped[-1]
    if (clocks := _read(run, CLOCKS_NAME)) is not None:
        run.clocks, run.damaged_clock_lines = read_clocks(clocks)
