"""The drill fixture: per scenario module and arbitrator mode, a provisioned lab (fresh if it was drilled
before, or restored from a snapshot), a run folder, the claims table; at the end, the faults × modes matrix.

Every module in scenarios/ is a scenario (``pytest scenarios/`` runs them all); a module names its
``FAULT`` and its ``VICTIM`` controller.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from lab.drill.claims import ARBITRATORS, claims_table, load_expectations
from lab.drill.runner import INJECTIONS, Drill
from lab.drill.state import load_state, resume, save_state
from lab.errors import LabError
from lab.providers import create_provider, select_provider
from lab.providers.snapshot import SnapshotError, SnapshotUnusable
from lab.record import RunRecord
from lab.report import render_report
from lab.report.matrix import matrix_table, render_matrix
from lab.session import LabSession
from lab.stacks import get_stack, stack_name_for
from lab.topology import load_topology

HERE = Path(__file__).resolve().parent
_drills: list[Drill] = []


def _injections(config) -> frozenset[str]:
    return frozenset(f for f in config.getoption("--inject").split(",") if f)


def pytest_configure(config):
    unknown = sorted(_injections(config) - set(INJECTIONS))
    if unknown:
        raise pytest.UsageError(f"--inject {unknown[0]} is not a fault; use {', '.join(INJECTIONS)}")


def pytest_collect_file(file_path, parent):
    """Every module of scenarios/ is a scenario, whatever its name (pytest itself collects the ones named
    on the command line)."""
    if (file_path.suffix == ".py" and file_path.parent == HERE and file_path.name != "conftest.py"
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def arbitrator_modes(config) -> list[str]:
    """``--arbitrator paper|takeover|both`` (comma lists too); default: the topology's own mode."""
    value = config.getoption("--arbitrator")
    if not value:
        return [load_topology(config.getoption("--topology")).lab.arbitrator]
    modes = list(ARBITRATORS) if value == "both" else [m for m in value.split(",") if m]
    unknown = [m for m in modes if m not in ARBITRATORS]
    if unknown or not modes:
        raise pytest.UsageError(f"--arbitrator {value} is not a mode; use {', '.join(ARBITRATORS)} or both")
    return modes


def step_may_find_hosts_down(step: int) -> bool:
    """After the fault (step 3 on), a controller being off is the state the step expects."""
    return step >= 3


def pytest_collection_modifyitems(config, items):
    """``--step N`` keeps only each scenario's step N (its test named test_N_...)."""
    step = config.getoption("--step")
    if step is None:
        return
    prefix = f"test_{step}_"
    keep = [i for i in items if getattr(i, "originalname", i.name).startswith(prefix)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def pytest_generate_tests(metafunc):
    if "drill" in metafunc.fixturenames:
        metafunc.parametrize("drill", arbitrator_modes(metafunc.config), indirect=True, scope="module")


def keep_lab_policy(config) -> str:
    """What to do with the lab after a drill: the option, else never in CI, else keep it on failure."""
    return config.getoption("--keep-lab") or ("never" if os.environ.get("CI") else "on-failure")


@pytest.fixture(scope="module")
def drill(request) -> Drill:
    option = request.config.getoption
    arbitrator = getattr(request, "param", None) or arbitrator_modes(request.config)[0]
    loaded = load_topology(option("--topology"))
    topo = dataclasses.replace(loaded, lab=dataclasses.replace(loaded.lab, arbitrator=arbitrator))
    fault = getattr(request.module, "FAULT", "kill-ctrl-a")
    victim = getattr(request.module, "VICTIM", topo.controllers[0].name)
    if victim not in [c.name for c in topo.controllers]:
        raise LabError(f"{request.module.__name__}.VICTIM = {victim!r} is not a controller of the topology")
    provider_name, reason = select_provider(topo, option("--provider"))
    stack_name = stack_name_for(topo.lab.stack, option("--stack"), provider_name)
    lab_dir = option("--lab-dir")
    provider = create_provider(topo, provider_name, **({"lab_dir": Path(lab_dir)} if lab_dir else {}))
    stack = get_stack(stack_name)
    stack.check_arbitrator(topo)
    scenario = f"{request.module.__name__.rpartition('.')[2]}-{arbitrator}"
    record = RunRecord.create(Path(option("--artifacts")), scenario)
    record.event("lab", provider=provider_name, provider_reason=reason, stack=stack_name, topology=topo.source,
                 arbitrator=arbitrator, fault=fault, victim=victim)
    session = LabSession(topo, provider, stack, record)
    inject = _injections(request.config)
    expectations = load_expectations(HERE / "expectations.toml", stack_name, arbitrator, fault)
    the_drill = Drill(session, record, expectations, inject=inject, fault=fault, arbitrator=arbitrator, victim=victim)
    record.event("injections", faults=sorted(inject))
    _drills.append(the_drill)

    module = request.module.__name__.rpartition(".")[2]
    step = option("--step")
    if step is not None:
        _resume_kept_lab(the_drill, module, step)
    else:
        _fresh_lab(the_drill, option, arbitrator)
    yield the_drill
    for host in topo.hosts:
        session.save_console(host, "end")
        kernel = session.run(host, "dmesg", 30, "dmesg-end")
        record.save(f"dmesg/{host}-end.txt", kernel.stdout or kernel.stderr)
    _write_results(the_drill)
    policy = "always" if step is not None else keep_lab_policy(request.config)
    failed = bool(the_drill.failed_steps) or the_drill.interrupted
    if policy == "never" or (policy == "on-failure" and not failed):
        provider.down()
        record.event("lab-removed", policy=policy)
    else:
        save_state(the_drill, provider.lab_dir, module)
        record.event("lab-kept", policy=policy, lab_dir=str(provider.lab_dir),
                     rerun_a_step=f"bst drill --scenario {module} --arbitrator {arbitrator} --step N")


def _fresh_lab(the_drill: Drill, option, arbitrator: str) -> None:
    """A clean provisioned lab: restored from the mode's snapshot, else rebuilt when drilled, and provisioned."""
    session, record = the_drill.session, the_drill.record
    provider = session.provider
    marker = Path(provider.lab_dir) / "drilled"
    snapshot = option("--snapshot")
    if snapshot not in ("", "none"):
        snapshot = f"{snapshot}-{arbitrator}"
    restored = _restore_snapshot(provider, snapshot, record)
    if not restored:
        if marker.exists():
            record.event("reset", reason=f"the lab was drilled by {marker.read_text().strip()}: rebuilding it")
            provider.down()
        provider.up()
        session.apply(session.stack.provision(session.topo), "provision")
        if option("--save-snapshot") and snapshot not in ("", "none"):
            manifest = provider.snapshot_save(snapshot, replace=True)
            record.event("snapshot-saved", snapshot=snapshot, size_bytes=manifest.size_bytes, **manifest.timings)
    marker.write_text(record.folder.name + "\n")
    record.event("provisioned", from_snapshot=snapshot if restored else None)


def _resume_kept_lab(the_drill: Drill, module: str, step: int) -> None:
    """``--step N``: the kept lab as it is, and what the drill that kept it had learnt."""
    provider = the_drill.session.provider
    try:
        state = load_state(provider.lab_dir, module, the_drill.arbitrator)
    except LabError as error:
        pytest.fail(str(error), pytrace=False)
    not_running = [s.name for s in provider.status() if str(s.state) != "running"]
    if not_running and not step_may_find_hosts_down(step):
        pytest.fail(f"the kept lab has {', '.join(not_running)} not running; start them with `bst start HOST` "
                    "or run the whole drill again", pytrace=False)
    resume(the_drill, state, f"test_{step}_")


def _restore_snapshot(provider, name: str, record: RunRecord) -> bool:
    """Restore the provisioned lab from snapshot ``name``; False (and why, as an event) when the drill must
    provision instead: no such snapshot, one of another topology or image, or a provider without snapshots.
    A restore that fails half-way leaves the lab removed, to be rebuilt."""
    if name in ("", "none"):
        return False
    try:
        timings = provider.snapshot_restore(name)
    except SnapshotUnusable as why:
        record.event("snapshot-not-used", snapshot=name, reason=str(why))
        return False
    except LabError as error:
        record.event("snapshot-not-used", snapshot=name, reason=str(error))
        if isinstance(error, SnapshotError):
            provider.down()
        return False
    record.event("snapshot-restored", snapshot=name, **timings)
    return True


def _write_results(the_drill: Drill) -> None:
    record = the_drill.record
    record.write_json("results.json", {
        "scenario": record.scenario,
        "stack": the_drill.session.stack.name,
        "fault": the_drill.fault,
        "arbitrator": the_drill.arbitrator,
        "victim": the_drill.victim,
        "claims": [r.to_json() for r in the_drill.results],
        "facts": the_drill.facts,
        "failed_steps": the_drill.failed_steps,
        "interrupted": the_drill.interrupted,
        "unexpected": [r.claim for r in the_drill.results if not r.expected],
    })
    record.event("run-end")
    try:
        render_report(record.folder)
    except Exception as error:  # noqa: BLE001 - a report bug must not hide the drill's own verdicts
        record.event("report-failed", error=f"{type(error).__name__}: {error}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    step = getattr(item, "originalname", item.name)
    if report.failed and _drills:
        _drills[-1].failed_steps.append(step)
        _drills[-1].record.event("step-failed", step=step, when=report.when, error=str(call.excinfo.value)
                                 if call.excinfo else "")
    elif report.when == "call" and _drills:
        _drills[-1].record.event("step-passed", step=step, duration=round(report.duration, 2))


def pytest_keyboard_interrupt(excinfo):
    """Ctrl-C: say so in the run folder; the fixture's teardown still collects consoles, dmesg and results."""
    for the_drill in _drills:
        the_drill.interrupted = True
        the_drill.record.event("interrupted", error=str(excinfo.typename))


def pytest_terminal_summary(terminalreporter):
    console = Console(file=getattr(terminalreporter._tw, "_file", None), width=max(terminalreporter._tw.fullwidth, 180))
    for the_drill in _drills:
        console.print(claims_table(the_drill.results))
        facts = {k: v for k, v in the_drill.facts.items() if not isinstance(v, dict | list)}
        if facts:
            console.print("facts: " + json.dumps(facts, default=str), markup=False)
        console.print(f"{the_drill.fault} ({the_drill.arbitrator}) run folder: {the_drill.record.folder}  "
                      f"report: {the_drill.record.folder / 'report.html'}", markup=False)
    if len(_drills) > 1:
        path, cells = render_matrix([d.record.folder for d in _drills], _drills[-1].record.folder.parent)
        console.print(matrix_table(cells))
        console.print(f"faults × modes: {path}", markup=False)
