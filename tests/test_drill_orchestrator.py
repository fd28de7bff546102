"""The orchestrator runs a scenario's steps in order, records each, writes typed results, keeps or removes
the lab as its policy says (a fake lab: no VM)."""

import json

import pytest

from lab.drill.claims import Expectation
from lab.drill.context import Drill, StepError
from lab.drill.nemesis import CutLink
from lab.drill.orchestrator import DrillOptions, DrillRun
from lab.drill.progress import LineProgress
from lab.drill.scenario import Scenario, Step
from lab.errors import LabError
from lab.record import RunRecord
from lab.result import CommandResult
from lab.runfolder import Results, StepStatus
from lab.stacks import get_stack
from lab.topology import load_topology


class Provider:
    def __init__(self, lab_dir):
        self.lab_dir = lab_dir
        self.calls = []

    def down(self):
        self.calls.append("down")

    def set_link(self, host, network, up):
        self.calls.append(("link", host, up))

    def console_log(self, host):
        return self.lab_dir / f"{host}.log"


class Session:
    topo = load_topology(None)
    stack = get_stack("linux")

    def __init__(self, provider):
        self.provider = provider

    def run(self, host, cmd, timeout=60, label=""):
        return CommandResult("", exit_code=0, stdout="", stderr="")

    def save_console(self, host, name):
        pass


def holds(drill: Drill) -> None:
    drill.claim("provisioned", True, "fine")


def strikes_and_fails(drill: Drill) -> None:
    drill.nemesis.start(drill, drill.victim)
    raise StepError("the copy had already finished")


def never_reached(drill: Drill) -> None:
    raise AssertionError("a step whose strike failed must not run")


SCENARIO = Scenario(fault="lost-client-path", victim="ctrl-a", nemesis=CutLink,
                    steps=(Step("healthy", holds, judges=("provisioned",)),
                           Step("cut", strikes_and_fails, strikes=True), Step("after", never_reached)), name="cable")


def _run(tmp_path, keep_lab="on-failure") -> tuple[DrillRun, Provider, list[str]]:
    lines: list[str] = []
    run = DrillRun(SCENARIO, DrillOptions(arbitrator="paper", keep_lab=keep_lab), LineProgress(lines.append))
    provider = Provider(tmp_path / "lab")
    provider.lab_dir.mkdir(parents=True)
    record = RunRecord.create(tmp_path / "artifacts", "cable-paper")
    run.drill = Drill(Session(provider), record, {"provisioned": Expectation.HOLD}, fault=SCENARIO.fault,
                      victim="ctrl-a", nemesis=CutLink(), on_progress=lines.append)
    run.progress.opened(run.label, 3, record.folder)
    return run, provider, lines


def test_steps_run_in_order_a_failed_strike_stops_the_rest_and_results_are_typed(tmp_path):
    run, provider, lines = _run(tmp_path)
    assert run.run_step(1).status is StepStatus.PASSED
    with pytest.raises(StepError, match="the copy had already finished"):
        run.run_step(2)
    with pytest.raises(StepError, match="cannot run: earlier step test_2_cut failed"):
        run.run_step(3)
    results = run.close()
    folder = run.drill.record.folder
    assert Results.from_json(json.loads((folder / "results.json").read_text())) == results
    assert [(s.name, s.status) for s in results.steps] == [
        ("test_1_healthy", StepStatus.PASSED), ("test_2_cut", StepStatus.FAILED), ("test_3_after", StepStatus.FAILED)]
    assert results.failed_steps == ["test_2_cut", "test_3_after"] and results.unexpected == []
    assert provider.calls == [("link", "ctrl-a", False), ("link", "ctrl-a", True)], "the cable goes back, lab kept"
    assert (provider.lab_dir / "drill-state.json").exists()
    kinds = [json.loads(line)["kind"] for line in (folder / "events.jsonl").read_text().splitlines()]
    assert kinds.count("step-started") == 3 and kinds.count("step-failed") == 2 and kinds[-2:] == ["run-end",
                                                                                                   "lab-kept"]
    assert any("step 2/3 FAILED: the copy had already finished" in line for line in lines)


def test_a_lab_that_passed_is_removed_and_one_that_must_never_be_kept_is_removed_too(tmp_path):
    run, provider, _ = _run(tmp_path / "a")
    run.run_step(1)
    run.close()
    assert provider.calls == ["down"]
    run, provider, _ = _run(tmp_path / "b", keep_lab="never")
    with pytest.raises(StepError):
        run.run_step(2)
    run.close()
    assert provider.calls[-1] == "down" and not (provider.lab_dir / "drill-state.json").exists()


def test_a_bug_in_a_step_is_recorded_then_raised_as_itself(tmp_path):
    run, _, _ = _run(tmp_path)
    broken = Scenario(fault="f", victim="ctrl-a", nemesis=CutLink,
                      steps=(Step("bug", lambda drill: {}["missing"], strikes=True),), name="bug")
    run.scenario = broken
    with pytest.raises(KeyError):
        run.run_step(1)
    assert run.drill.steps[0].error == "KeyError: 'missing'"


def test_a_step_that_judges_a_claim_it_did_not_declare_fails_naming_it(tmp_path):
    run, _, _ = _run(tmp_path)
    run.scenario = Scenario(fault="f", victim="ctrl-a", nemesis=CutLink, name="sloppy",
                            steps=(Step("healthy", holds, judges=("copy_completes",), strikes=True),))
    with pytest.raises(StepError, match="claim 'provisioned' was judged by a step that does not declare it"):
        run.run_step(1)
    assert run.drill.results == [] and run.drill.judging is None
    assert run.drill.steps[0].status is StepStatus.FAILED


def test_bad_options_are_one_clear_line():
    with pytest.raises(LabError, match="--inject meteor is not a fault; use corrupt-copy"):
        DrillOptions(inject=frozenset({"meteor"}))
    with pytest.raises(LabError, match="--keep-lab sometimes is not a policy"):
        DrillOptions(keep_lab="sometimes")
    assert DrillOptions(step=4, keep_lab="never").keep_policy == "always"


def test_the_live_display_shows_the_step_what_it_does_and_each_hosts_plan_step(tmp_path):
    from rich.console import Console

    from lab.drill.progress import LiveProgress
    from lab.executor import StepEvent

    console = Console(record=True, width=160, force_terminal=False)
    live = LiveProgress(console)
    live.opened("failover-paper", 7, tmp_path)
    live.step_started(6, "test_6_recovery_as_the_paper_describes")
    live.doing("ctrl-a: the recovery plan")
    live.plan_step(StepEvent("ctrl-a", 3, 12, "import-pools"))
    console.print(live._render())
    text = console.export_text()
    assert "step 6/7 test_6_recovery_as_the_paper_describes" in text and "ctrl-a: the recovery plan" in text
    assert "ctrl-a: plan step 3/12 import-pools (started)" in text


def test_the_drill_takes_the_stack_the_lab_was_brought_up_with_and_refuses_another(tmp_path, monkeypatch):
    import lab.drill.orchestrator as orchestrator

    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "state.json").write_text(json.dumps({"version": 1, "stack": "freebsd"}))
    options = {"arbitrator": "paper", "provider": "qemu", "lab_dir": lab_dir, "artifacts": tmp_path / "artifacts"}
    refused = DrillRun(SCENARIO, DrillOptions(stack="linux", **options), LineProgress(lambda line: None))
    with pytest.raises(LabError, match="lab beast runs the freebsd stack .* use --stack freebsd"):
        refused.open()

    chosen = []

    def chosen_stack(name):
        chosen.append(name)
        raise RuntimeError("stop after choosing")

    monkeypatch.setattr(orchestrator, "get_stack", chosen_stack)
    with pytest.raises(RuntimeError, match="stop after choosing"):
        DrillRun(SCENARIO, DrillOptions(**options), LineProgress(lambda line: None)).open()
    assert chosen == ["freebsd"]
