"""``python -m lab.bench --failover N``: N kill-ctrl-a drills per arbitrator mode, each run one object in
``artifacts/bench/<UTC stamp>/bench.json`` (``artifacts/bench/latest`` points at it), and bench.html.

Each run goes through the drill's orchestrator from the mode's snapshot, which the mode's first run saves,
so no run rebuilds the lab. A drill that fails (an unexpected verdict, a failed step, even a setup error)
is a finding in its run's object and the series goes on; Ctrl-C stops it with the runs so far written.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from lab.bench_html import BENCH_HTML, bench_html, stats_table
from lab.bench_stats import mode_stats
from lab.drill.claims import ARBITRATORS
from lab.drill.progress import LineProgress, LiveProgress, QuietProgress
from lab.errors import LabError
from lab.labdir import inside
from lab.providers.snapshot import utc_now
from lab.record import stamped_folder
from lab.report.files import read_events
from lab.runfolder import EVENTS_NAME, EventKind, Results, SchemaError, as_number, read_results
from lab.runfolder_io import loads, read_text, replace_file
from lab.scenario_names import scenarios_dir

BENCH_JSON = "bench.json"
SNAPSHOT = "bench"
"""The modes' snapshots are ``bench-<mode>`` in the bench's own lab directory."""
RUNS_DIR = "runs"

DrillFactory = Callable[..., Any]
"""``(scenario, DrillOptions, progress)`` → an object with ``run() -> Results`` and ``drill.record.folder``
(``lab.drill.orchestrator.DrillRun``; tests hand in a fake)."""


def parse_arbitrators(value: str) -> list[str]:
    """``paper,cluster`` or ``all`` → the modes in order, once each; LabError in one line naming a bad value."""
    modes = list(ARBITRATORS) if value.strip() == "all" else [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ARBITRATORS]
    if unknown or not modes:
        bad = ", ".join(unknown) if unknown else repr(value)
        raise LabError(f"--arbitrator {bad} is not a mode; use {', '.join(ARBITRATORS)}, a comma list of them, "
                       "or all")
    return list(dict.fromkeys(modes))


@dataclass
class Bench:
    """What bench.json holds, written anew after every run (a killed benchmark keeps the runs it finished)."""

    folder: Path
    command: str
    machine: dict[str, Any]
    modes: list[str]
    runs_per_mode: int
    measured_at: str = field(default_factory=utc_now)
    runs: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"measured_at": self.measured_at, "machine": self.machine, "command": self.command,
                "modes": self.modes, "runs_per_mode": self.runs_per_mode, "interrupted": self.interrupted,
                "run_folders_relative_to": "the folder of this file", "runs": self.runs,
                "summary": {mode: stats.to_json() for mode, stats in mode_stats(self.runs).items()}}

    def write(self) -> Path:
        path = inside(self.folder, self.folder / BENCH_JSON)
        return replace_file(path.parent, path.name, (json.dumps(self.to_json(), indent=2) + "\n").encode())


def snapshot_use(folder: Path | None) -> str | None:
    """How the run's lab was set up, from its events: "saved", "restored" or "provisioned" (the snapshot was
    not used); None when the run left no events."""
    if folder is None:
        return None
    try:
        events, _ = read_events(read_text(folder, folder / EVENTS_NAME).text)
    except (OSError, LabError):
        return None
    kinds = {e.kind for e in events}
    return ("saved" if EventKind.SNAPSHOT_SAVED in kinds else "restored" if EventKind.SNAPSHOT_RESTORED in kinds
            else "provisioned" if EventKind.PROVISIONED in kinds else None)


def run_entry(mode: str, number: int, results: Results | None, folder: Path | None, base: Path, started_at: str,
              seconds: float, error: str = "", interrupted: bool = False) -> dict[str, Any]:
    """One run's object in bench.json: its stall, whether it lost acknowledged writes, every verdict, and
    what went wrong (unexpected verdicts, failed steps, an error that stopped the drill)."""
    facts = results.facts if results else {}
    lost = facts.get("acknowledged_writes_lost")
    relative = None
    if folder is not None:
        try:
            relative = folder.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            relative = str(folder)
    return {
        "arbitrator": mode, "run": number, "started_at": started_at, "seconds": round(seconds, 1),
        "stall_s": as_number(facts.get("failover_stall_s")),
        "stall_source": str(facts.get("failover_stall_source") or "probe"),
        "acknowledged_writes_lost": lost if isinstance(lost, int) and not isinstance(lost, bool) else None,
        "verdicts": {c.claim: "held" if c.held else "not held" for c in results.claims} if results else {},
        "unexpected": results.unexpected if results else [],
        "failed_steps": results.failed_steps if results else [],
        "error": error, "interrupted": interrupted or bool(results and results.interrupted),
        "snapshot": snapshot_use(folder), "run_folder": relative, "host_load": host_load(),
    }


def host_load() -> list[float]:
    """The host's 1, 5 and 15 minute load averages as the run ends: under TCG every phase of a takeover
    stretches with what else the host runs, so a run's figures are read beside them."""
    return [round(load, 2) for load in os.getloadavg()]


def run_folder(run: Any) -> Path | None:
    """The drill's run folder, once it made one (DrillRun keeps it on ``drill.record``)."""
    record = getattr(getattr(run, "drill", None), "record", None)
    return Path(record.folder) if record is not None else None


def one_run(make: DrillFactory, scenario: Any, options: Any, progress: Any, mode: str, number: int,
            base: Path) -> tuple[dict[str, Any], bool]:
    """Run one drill; its object and whether Ctrl-C stopped it. Any failure is recorded, never raised."""
    started_at, started = utc_now(), time.monotonic()
    run, results, error, interrupted = None, None, "", False
    try:
        run = make(scenario, options, progress)
        results = run.run()
    except KeyboardInterrupt:
        interrupted = True
    except LabError as failure:
        error = str(failure)
    except Exception as failure:  # noqa: BLE001 - a drill's bug is a finding of that run, not the series' end
        error = f"{type(failure).__name__}: {failure}"
    folder = run_folder(run)
    if results is None and folder is not None:
        try:
            results = read_results(folder)
        except SchemaError as damaged:
            error = f"{error}; {damaged}" if error else str(damaged)
    entry = run_entry(mode, number, results, folder, base, started_at, time.monotonic() - started, error, interrupted)
    return entry, interrupted


def drill_progress(console: Console) -> Any:
    """The drill's own display: a live panel on a terminal, one line per step elsewhere (CI, a pipe)."""
    if console.is_terminal and not os.environ.get("CI"):
        return LiveProgress(console)
    return LineProgress(lambda text: console.print(text, markup=False, highlight=False))


def run_series(bench: Bench, options_for: Callable[[str, bool], Any], make: DrillFactory, scenario: Any,
               console: Console, progress: Any = None) -> Bench:
    """``runs_per_mode`` drills per mode; run 1 of a mode saves its snapshot (and so does any later run while
    none was saved, e.g. after run 1 failed to set up), the others restore it. bench.json after each run;
    KeyboardInterrupt after writing the interrupted run and marking the bench interrupted."""
    base = bench.folder
    total, done = len(bench.modes) * bench.runs_per_mode, 0
    for mode in bench.modes:
        saved = False
        for number in range(1, bench.runs_per_mode + 1):
            done += 1
            console.rule(f"[bold]run {number}/{bench.runs_per_mode} · {escape(mode)}[/] · drill {done}/{total}")
            entry, interrupted = one_run(make, scenario, options_for(mode, not saved), progress or QuietProgress(),
                                         mode, number, base)
            saved = saved or entry["snapshot"] in ("saved", "restored")
            bench.runs.append(entry)
            bench.interrupted = interrupted
            bench.write()
            console.print(run_line(entry), markup=False, highlight=False)
            if interrupted:
                raise KeyboardInterrupt
    return bench


def run_line(entry: dict[str, Any]) -> str:
    stall = "no stall measured" if entry["stall_s"] is None else f"stall {entry['stall_s']:.1f} s"
    findings = ([f"unexpected: {', '.join(entry['unexpected'])}"] if entry["unexpected"] else []) + (
        [f"failed: {', '.join(entry['failed_steps'])}"] if entry["failed_steps"] else []) + (
        [f"error: {entry['error'].splitlines()[0]}"] if entry["error"] else [])
    return (f"{entry['arbitrator']} run {entry['run']}: {stall}, {entry['seconds']:.0f} s, lab "
            f"{entry['snapshot'] or 'not set up'}; {'; '.join(findings) or 'as expected'}")


def write_report(folder: Path, data: dict[str, Any] | None = None) -> Path:
    """bench.html beside bench.json (read from the folder when ``data`` is not given); its path."""
    if data is None:
        data = load_bench(folder)
    path = inside(folder, Path(folder) / BENCH_HTML)
    replace_file(path.parent, path.name, bench_html(data).encode())
    return Path(folder) / BENCH_HTML


def load_bench(folder: Path) -> dict[str, Any]:
    """bench.json's contents; LabError in one line when it is missing, damaged or not an object with runs."""
    try:
        data = loads(read_text(Path(folder), Path(folder) / BENCH_JSON).text)
    except FileNotFoundError:
        raise LabError(f"no {BENCH_JSON} in {folder}; run `python -m lab.bench --failover N` first") from None
    except (OSError, ValueError) as error:
        raise LabError(f"{BENCH_JSON} in {folder} cannot be read: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise LabError(f"{BENCH_JSON} in {folder} is not a benchmark (no list of runs)")
    return data


def failover_bench(runs: int, modes: list[str], topology: str | None, lab_dir: Path, artifacts: Path,
                   console: Console, machine: dict[str, Any], make: DrillFactory | None = None,
                   cleanup: Callable[[], None] | None = None, command: str = "") -> tuple[Bench, int]:
    """The whole benchmark: the bench folder, the series, bench.html and the table; the lab removed and the
    modes' snapshots deleted before and after (Ctrl-C included). The bench and the exit status (130: Ctrl-C)."""
    from lab.drill.orchestrator import DrillOptions, DrillRun
    from lab.drill.scenario import load_scenario

    scenario = load_scenario(scenarios_dir() / "failover.py")
    folder = stamped_folder(artifacts / "bench")
    bench = Bench(folder, command or shlex.join(["python", "-m", "lab.bench", *sys.argv[1:]]), machine, modes, runs)
    bench.write()

    def options_for(mode: str, save: bool) -> DrillOptions:
        return DrillOptions(topology=topology, provider="qemu", arbitrator=mode, lab_dir=lab_dir,
                            artifacts=folder / RUNS_DIR, snapshot=SNAPSHOT, save_snapshot=save, keep_lab="never")

    cleanup = cleanup or (lambda: remove_lab(topology, lab_dir, modes))
    status = 0
    console.print(f"benchmark folder {folder}", markup=False, highlight=False)
    try:
        cleanup()
        run_series(bench, options_for, make or DrillRun, scenario, console, drill_progress(console))
    except KeyboardInterrupt:
        status = 130
        console.print("interrupted: writing the runs so far, removing the lab and its snapshots")
    finally:
        bench.write()
        cleanup()
    write_report(folder, bench.to_json())
    console.print(stats_table(bench.runs))
    console.print(f"written to {folder / BENCH_JSON} and {folder / BENCH_HTML}", markup=False, highlight=False)
    return bench, status


def remove_lab(topology: str | None, lab_dir: Path, modes: list[str]) -> None:
    """The bench's lab down and the modes' ``bench-<mode>`` snapshots deleted (stale ones from a killed run too)."""
    from lab.providers.qemu import QemuProvider
    from lab.topology import load_topology

    provider = QemuProvider(load_topology(topology), lab_dir=lab_dir)
    provider.down()
    for manifest in provider.snapshots():
        if manifest.name in {f"{SNAPSHOT}-{mode}" for mode in modes}:
            provider.snapshot_delete(manifest.name)
