"""pytest runs the drill: every module of scenarios/ declares a scenario, and each of its steps is a test.

Collection makes, per scenario and arbitrator mode, one ``DrillRun`` (lab/drill/orchestrator.py) whose
setup is the lab's and whose steps are the tests; this file only maps pytest's options, progress and
summary onto it. At the end: the claims table of each run and, for several runs, the faults × modes matrix.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from rich.console import Console

from lab.drill.claims import ARBITRATORS, claims_table
from lab.drill.context import StepError
from lab.drill.orchestrator import DrillOptions, DrillRun
from lab.drill.progress import LineProgress, LiveProgress
from lab.drill.scenario import Scenario, load_scenario
from lab.errors import LabError
from lab.report.matrix import matrix_table, render_matrix
from lab.topology import load_topology

HERE = Path(__file__).resolve().parent
_runs: list[DrillRun] = []


def drill_options(config, arbitrator: str) -> DrillOptions:
    option = config.getoption
    lab_dir = option("--lab-dir")
    try:
        return DrillOptions(
            topology=option("--topology"), provider=option("--provider"), stack=option("--stack"),
            arbitrator=arbitrator, lab_dir=Path(lab_dir) if lab_dir else None, artifacts=Path(option("--artifacts")),
            snapshot=option("--snapshot"), save_snapshot=option("--save-snapshot"),
            inject=frozenset(f for f in option("--inject").split(",") if f), keep_lab=option("--keep-lab"),
            step=option("--step"))
    except LabError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_configure(config):
    drill_options(config, "paper")


def arbitrator_modes(config) -> list[str]:
    """``--arbitrator paper|takeover|cluster|all`` (comma lists too); default: the topology's own mode."""
    value = config.getoption("--arbitrator")
    if not value:
        return [load_topology(config.getoption("--topology")).lab.arbitrator]
    modes = list(ARBITRATORS) if value == "all" else [m for m in value.split(",") if m]
    unknown = [m for m in modes if m not in ARBITRATORS]
    if unknown or not modes:
        raise pytest.UsageError(f"--arbitrator {value} is not a mode; use {', '.join(ARBITRATORS)}, "
                                "a comma list or all")
    return modes


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.parent == HERE and file_path.name != "conftest.py":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makemodule(module_path, parent):
    """A scenario module is a declaration, not a test module: pytest's own collector stays away from it."""
    if module_path.parent == HERE and module_path.name != "conftest.py":
        return NotATestModule.from_parent(parent, path=module_path)
    return None


class NotATestModule(pytest.File):
    def collect(self):
        return []


class ScenarioFile(pytest.File):
    def collect(self):
        scenario = load_scenario(self.path)
        for mode in arbitrator_modes(self.config):
            yield ScenarioRun.from_parent(self, name=mode, scenario=scenario, mode=mode)


def _progress(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stream = getattr(getattr(reporter, "_tw", None), "_file", None) or sys.stdout
    if stream.isatty() and not os.environ.get("CI"):
        return LiveProgress(Console(file=stream))
    return LineProgress(lambda text: reporter.write_line(text) if reporter else print(text, file=stream))


def _uncaptured(config):
    """The drill's display writes to the terminal while a step runs: pytest's capture steps aside."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else nullcontext()


class ScenarioRun(pytest.Collector):
    """One scenario in one arbitrator mode: setting it up opens the drill, tearing it down closes it."""

    def __init__(self, *, scenario: Scenario, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.run = DrillRun(scenario, drill_options(self.config, mode), _progress(self.config))

    def collect(self):
        for number in range(1, len(self.scenario.steps) + 1):
            yield StepItem.from_parent(self, name=self.scenario.step_id(number), number=number)

    def setup(self):
        _runs.append(self.run)
        with _uncaptured(self.config):
            try:
                self.run.open()
            except LabError as error:
                raise StepError(str(error)) from None

    def teardown(self):
        if self.run.drill is not None and not self.run.closed:
            with _uncaptured(self.config):
                self.run.close()


class StepItem(pytest.Item):
    def __init__(self, *, number: int, **kwargs):
        super().__init__(**kwargs)
        self.number = number
        self.add_marker("vm")

    def runtest(self):
        with _uncaptured(self.config):
            self.parent.run.run_step(self.number)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, StepError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.parent.run.label}: {self.name}"


def pytest_collection_modifyitems(config, items):
    """``--step N`` keeps only each scenario's step N."""
    step = config.getoption("--step")
    if step is None:
        return
    keep = [i for i in items if isinstance(i, StepItem) and i.number == step]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def pytest_keyboard_interrupt(excinfo):
    """Ctrl-C: say so in the run folder; the teardown still collects consoles, dmesg and results."""
    for run in _runs:
        if run.drill is not None and not run.closed:
            run.interrupt()


def pytest_terminal_summary(terminalreporter):
    console = Console(file=getattr(terminalreporter._tw, "_file", None), width=max(terminalreporter._tw.fullwidth, 180))
    opened = [run for run in _runs if run.drill is not None]
    for run in opened:
        drill = run.drill
        console.print(claims_table(drill.results))
        facts = {k: v for k, v in drill.facts.items() if not isinstance(v, dict | list)}
        if facts:
            console.print("facts: " + json.dumps(facts, default=str), markup=False)
        console.print(f"{drill.fault} ({drill.arbitrator}) run folder: {drill.record.folder}  "
                      f"report: {drill.record.folder / 'report.html'}", markup=False)
    if len(opened) > 1:
        try:
            path, cells = render_matrix([r.drill.record.folder for r in opened],
                                        opened[-1].drill.record.folder.parent)
        except LabError as error:
            console.print(f"faults × modes: not written: {error}", markup=False)
            return
        console.print(matrix_table(cells))
        console.print(f"faults × modes: {path}", markup=False)
