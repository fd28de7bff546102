"""The drill's one orchestrator: set up the lab (from a snapshot, or provisioned), run a scenario's steps
in order, write the run folder, then keep or remove the lab.

pytest (``scenarios/conftest.py``), ``bst drill`` and ``lab.bench`` all run drills through ``DrillRun``;
none of them wires provider, stack, record or teardown itself.
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lab.drill.claims import load_expectations
from lab.drill.cluster import save_logs as save_cluster_logs
from lab.drill.context import INJECTIONS, Drill, StepError
from lab.drill.progress import Progress, QuietProgress
from lab.drill.scenario import Scenario
from lab.drill.state import load_state, resume, save_state
from lab.errors import LabError
from lab.providers import create_provider, select_provider
from lab.providers.snapshot import SnapshotError, SnapshotUnusable
from lab.record import RunRecord
from lab.runfolder import EventKind, Results, StepResult, StepStatus
from lab.session import LabSession
from lab.stacks import get_stack, lab_stack_name
from lab.topology import load_topology

KEEP_POLICIES = ("never", "on-failure", "always")
EXPECTATIONS = Path(__file__).resolve().parents[2] / "scenarios" / "expectations.toml"


@dataclass(frozen=True)
class DrillOptions:
    """What a user can choose about a drill (pytest options and ``bst drill`` flags alike)."""

    topology: str | None = None
    provider: str | None = None
    stack: str | None = None
    arbitrator: str | None = None
    """None: the topology's own mode."""
    lab_dir: Path | None = None
    artifacts: Path = Path("artifacts")
    snapshot: str = "provisioned"
    """Start from this snapshot (suffixed with the mode) when it fits the lab; "none" always provisions."""
    save_snapshot: bool = False
    inject: frozenset[str] = frozenset()
    keep_lab: str | None = None
    """never, on-failure or always; None: never under CI, else on-failure."""
    step: int | None = None
    """Rerun only step N on the lab a previous drill kept."""
    expectations: Path = EXPECTATIONS

    def __post_init__(self) -> None:
        unknown = sorted(self.inject - set(INJECTIONS))
        if unknown:
            raise LabError(f"--inject {unknown[0]} is not a fault; use {', '.join(INJECTIONS)}")
        if self.keep_lab is not None and self.keep_lab not in KEEP_POLICIES:
            raise LabError(f"--keep-lab {self.keep_lab} is not a policy; use {', '.join(KEEP_POLICIES)}")

    @property
    def keep_policy(self) -> str:
        if self.step is not None:
            return "always"
        return self.keep_lab or ("never" if os.environ.get("CI") else "on-failure")


class DrillRun:
    """One scenario in one arbitrator mode, from lab setup to the run folder's last line."""

    def __init__(self, scenario: Scenario, options: DrillOptions, progress: Progress | None = None):
        self.scenario = scenario
        self.options = options
        self.progress = progress or QuietProgress()
        self.drill: Drill | None = None
        self.closed = False

    @property
    def label(self) -> str:
        return f"{self.scenario.name}-{self.arbitrator}"

    @cached_property
    def arbitrator(self) -> str:
        return self.options.arbitrator or load_topology(self.options.topology).lab.arbitrator

    def open(self) -> Drill:
        """The run folder, the lab ready for step 1 (or as kept, for ``step``), and the Drill to act through."""
        options, scenario = self.options, self.scenario
        loaded = load_topology(options.topology)
        topo = dataclasses.replace(loaded, lab=dataclasses.replace(loaded.lab, arbitrator=self.arbitrator))
        if scenario.victim not in [c.name for c in topo.controllers]:
            raise LabError(f"scenario {scenario.name} strikes {scenario.victim!r}, which is not a controller of "
                           f"{topo.source or 'the topology'}")
        provider_name, reason = select_provider(topo, options.provider)
        provider = create_provider(topo, provider_name, **({"lab_dir": options.lab_dir} if options.lab_dir else {}))
        stack_name = lab_stack_name(topo.lab.stack, options.stack, provider_name, provider.recorded_stack(),
                                    topo.lab.name)
        stack = get_stack(stack_name)
        stack.check_arbitrator(topo)
        expectations = load_expectations(options.expectations, stack_name, self.arbitrator, scenario.fault,
                                         scenario.claims)
        provider.hardware, provider.stack_name = stack.hardware, stack_name
        record = RunRecord.create(Path(options.artifacts), self.label)
        record.event(EventKind.LAB, provider=provider_name, provider_reason=reason, stack=stack_name,
                     topology=topo.source, arbitrator=self.arbitrator, fault=scenario.fault, victim=scenario.victim)
        record.event(EventKind.INJECTIONS, faults=sorted(options.inject))
        self.drill = drill = Drill(LabSession(topo, provider, stack, record), record, expectations,
                                   fault=scenario.fault, arbitrator=self.arbitrator, victim=scenario.victim,
                                   nemesis=scenario.nemesis(), inject=options.inject,
                                   on_progress=self.progress.doing, on_plan_step=self.progress.plan_step)
        self.progress.opened(self.label, len(scenario.steps), record.folder)
        try:
            with self.progress.showing():
                if options.step is not None:
                    self._resume_kept_lab(options.step)
                else:
                    self._fresh_lab()
        except LabError as error:
            self._record(0, "test_0_lab_setup", 0.0, str(error))
            self.close()
            raise
        return drill

    def run_step(self, number: int) -> StepResult:
        """Step N (from 1), recorded as passed or failed; StepError (after recording) when it failed."""
        drill = self._opened()
        step_id = self.scenario.step_id(number)
        needs = self.scenario.needs(number)
        self.progress.step_started(number, step_id)
        drill.event(EventKind.STEP_STARTED, step=step_id)
        started = time.monotonic()
        error = ""
        try:
            if needs is not None and needs in drill.failed_steps:
                raise StepError(f"cannot run: earlier step {needs} failed (see its error above)")
            step = self.scenario.steps[number - 1]
            drill.judging = step.judges
            try:
                with self.progress.showing():
                    step.run(drill)
            finally:
                drill.judging = None
        except (StepError, LabError) as failure:
            error = str(failure)
        except BaseException as failure:
            error = f"{type(failure).__name__}: {failure}"
            self._record(number, step_id, time.monotonic() - started, error)
            raise
        result = self._record(number, step_id, time.monotonic() - started, error)
        if error:
            raise StepError(error)
        return result

    def _record(self, number: int, step_id: str, seconds: float, error: str) -> StepResult:
        drill = self._opened()
        result = StepResult(number, step_id, StepStatus.FAILED if error else StepStatus.PASSED, round(seconds, 2),
                            error, round(time.time() - drill.record.started, 3))
        drill.steps[:] = [s for s in drill.steps if s.index != number] + [result]
        if error:
            drill.event(EventKind.STEP_FAILED, step=step_id, when="call", error=error)
        else:
            drill.event(EventKind.STEP_PASSED, step=step_id, duration=result.duration_s)
        self.progress.step_ended(result)
        return result

    def close(self) -> Results:
        """Heal a transient fault left in effect, collect consoles and kernel logs, write results.json and
        the report, then keep or remove the lab as the policy says."""
        drill = self._opened()
        self.closed = True
        session, record = drill.session, drill.record
        if drill.nemesis is not None:
            try:
                drill.nemesis.teardown(drill, drill.victim)
            except LabError as error:
                record.event(EventKind.ACTION, action="heal-failed", host=drill.victim, error=str(error))
        try:
            save_cluster_logs(drill)
        except LabError as error:
            record.event(EventKind.ACTION, action="cluster-logs-failed", error=str(error))
        for host in session.topo.hosts:
            session.save_console(host, "end")
            kernel = session.run(host, "dmesg", 30, "dmesg-end")
            record.save(f"dmesg/{host}-end.txt", kernel.stdout or kernel.stderr)
        results = Results(scenario=record.scenario, stack=session.stack.name, fault=drill.fault,
                          arbitrator=drill.arbitrator, victim=drill.victim, claims=list(drill.results),
                          facts=drill.facts, steps=sorted(drill.steps, key=lambda s: s.index),
                          interrupted=drill.interrupted)
        record.write_json("results.json", results.to_json())
        record.event(EventKind.RUN_END)
        try:
            from lab.report import render_report

            render_report(record.folder)
        except Exception as error:  # noqa: BLE001 - a report bug must not hide the drill's own verdicts
            record.event(EventKind.REPORT_FAILED, error=f"{type(error).__name__}: {error}")
        self._keep_or_remove(results)
        self.progress.closed(results, record.folder)
        return results

    def run(self) -> Results:
        """The whole drill (or only ``options.step``): open, the steps, close."""
        self.open()
        numbers = [self.options.step] if self.options.step is not None else range(1, len(self.scenario.steps) + 1)
        try:
            for number in numbers:
                with suppress(StepError):
                    self.run_step(number)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                self.interrupt()
            self.close()
            raise
        return self.close()

    def interrupt(self) -> None:
        """Ctrl-C: the run says so; ``close`` still collects consoles, kernel logs and results."""
        drill = self._opened()
        drill.interrupted = True
        drill.event(EventKind.INTERRUPTED, error="KeyboardInterrupt")

    def _opened(self) -> Drill:
        if self.drill is None:
            raise LabError("the drill was not opened")
        return self.drill

    def _keep_or_remove(self, results: Results) -> None:
        drill = self._opened()
        provider, record = drill.session.provider, drill.record
        policy = self.options.keep_policy
        failed = bool(results.failed_steps) or results.interrupted
        if policy == "never" or (policy == "on-failure" and not failed):
            provider.down()
            record.event(EventKind.LAB_REMOVED, policy=policy)
            return
        save_state(drill, provider.lab_dir, self.scenario.name)
        record.event(EventKind.LAB_KEPT, policy=policy, lab_dir=str(provider.lab_dir),
                     rerun_a_step=f"bst drill --scenario {self.scenario.name} --arbitrator {drill.arbitrator} "
                                  "--step N")

    def _fresh_lab(self) -> None:
        """A clean provisioned lab: restored from the mode's snapshot, else rebuilt when drilled, and provisioned."""
        drill = self._opened()
        session, record, provider = drill.session, drill.record, drill.session.provider
        marker = Path(provider.lab_dir) / "drilled"
        snapshot = self.options.snapshot
        if snapshot not in ("", "none"):
            snapshot = f"{snapshot}-{self.arbitrator}"
        self.progress.doing("setting up the lab")
        restored = self._restore_snapshot(snapshot)
        if not restored:
            if marker.exists():
                record.event(EventKind.RESET, reason=f"the lab was drilled by {marker.read_text().strip()}: "
                                                     "rebuilding it")
                provider.down()
            self.progress.doing("booting the lab")
            provider.up()
            self.progress.doing("provisioning")
            drill.apply(session.stack.provision(session.topo), "provision")
            if self.options.save_snapshot and snapshot not in ("", "none"):
                manifest = provider.snapshot_save(snapshot, replace=True)
                record.event(EventKind.SNAPSHOT_SAVED, snapshot=snapshot, size_bytes=manifest.size_bytes,
                             clocks_behind_s=self._set_guest_clocks(), **manifest.timings)
        marker.write_text(record.folder.name + "\n")
        record.event(EventKind.PROVISIONED, from_snapshot=snapshot if restored else None)

    def _restore_snapshot(self, name: str) -> bool:
        """Restore the provisioned lab from snapshot ``name``; False (and why, as an event) when the drill must
        provision instead: no such snapshot, one of another topology or image, or a provider without snapshots.
        A restore that fails half-way leaves the lab removed, to be rebuilt."""
        if name in ("", "none"):
            return False
        drill = self._opened()
        provider, record = drill.session.provider, drill.record
        try:
            timings = provider.snapshot_restore(name)
        except SnapshotUnusable as why:
            record.event(EventKind.SNAPSHOT_NOT_USED, snapshot=name, reason=str(why))
            return False
        except LabError as error:
            record.event(EventKind.SNAPSHOT_NOT_USED, snapshot=name, reason=str(error))
            if isinstance(error, SnapshotError):
                provider.down()
            return False
        record.event(EventKind.SNAPSHOT_RESTORED, snapshot=name, clocks_behind_s=self._set_guest_clocks(), **timings)
        return True

    def _set_guest_clocks(self) -> dict[str, float | None]:
        """A snapshot leaves guest clocks behind by its age (or by the save's pause): set them to the host's,
        so the probe's guest times and the drill's host times stay comparable. How far each was behind."""
        from lab.guests import sync_clocks

        session = self._opened().session
        found = sync_clocks(session.provider, session.stack, session.topo.hosts)
        return {host: None if sync is None else round(sync.behind_s, 1) for host, sync in found.items()}

    def _resume_kept_lab(self, step: int) -> None:
        """``step``: the kept lab as it is, and what the drill that kept it had learnt."""
        drill = self._opened()
        provider = drill.session.provider
        state = load_state(provider.lab_dir, self.scenario.name, self.arbitrator)
        not_running = [s.name for s in provider.status() if str(s.state) != "running"]
        if not_running and step < self.scenario.strike:
            raise LabError(f"the kept lab has {', '.join(not_running)} not running; start them with "
                           "`bst start HOST` or run the whole drill again")
        resume(drill, state, f"test_{step}_")
