"""A step declares the claims it judges (``Step(judges=...)``) and a scenario's claims follow from them;
while a step runs, judging any other claim fails it (``UndeclaredClaim``) and records nothing.

Why a failure and not a note: the declarations are what scenarios/expectations.toml is checked against,
so a claim judged without one is either missing from the table (the run would stop on a KeyError) or
judged where nobody looks for it. Failing the step names the claim and the fix; ``Drill.claims`` still
records the step's declared claims before it fails, so the rest of the run's evidence is kept.
"""

import json
import time
from types import SimpleNamespace

import pytest

from lab.drill import steps
from lab.drill.claims import CLAIMS, Expectation, Judged
from lab.drill.context import Drill, StepError, UndeclaredClaim
from lab.drill.takeover import take_over
from lab.record import RunRecord
from lab.result import CommandResult
from lab.topology import load_topology


class Session:
    """Controllers whose watchers logged nothing, a fence log with the fault's own fencing."""

    topo = load_topology(None)
    stack = SimpleNamespace(takeover=lambda topo, victim: {})

    def __init__(self, fence_log):
        self.provider = SimpleNamespace(fence_log_path=lambda: fence_log)
        self.commands = []

    def apply(self, plan, label, on_step=None):
        self.commands.append(("plan", label))

    def run(self, host, cmd, timeout=60, label=""):
        self.commands.append((host, label))
        return CommandResult(cmd, exit_code=0, stdout="", stderr="")


def _drill(tmp_path, arbitrator="paper", judging=None) -> Drill:
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "requests.jsonl"
    log.write_text("")
    drill = Drill(Session(log), RunRecord.create(tmp_path / "runs", "t"), dict.fromkeys(CLAIMS, Expectation.MAYBE),
                  arbitrator=arbitrator, victim="ctrl-a", judging=judging)
    drill.facts["fault_at"] = time.time()
    return drill


def test_a_claim_the_running_step_did_not_declare_fails_and_is_not_recorded(tmp_path):
    drill = _drill(tmp_path, judging=("provisioned",))
    with pytest.raises(UndeclaredClaim, match="claim .copy_completes. was judged by a step that does not declare"):
        drill.claim("copy_completes", True, "cp exited 0")
    assert drill.results == []
    with pytest.raises(StepError, match="claim .md5_from_disk. was judged by a step that does not declare"):
        drill.claims(Judged("md5_from_disk", True, "same"), Judged("provisioned", True, "fine"))
    assert [r.claim for r in drill.results] == ["provisioned"], "the declared claims are still recorded"
    drill.judging = None
    assert drill.claim("copy_completes", True, "cp exited 0").held, "outside a step nothing is checked"


@pytest.mark.parametrize("arbitrator", ["paper", "takeover", "cluster"])
def test_the_kill_step_declares_what_take_over_judges_in_every_mode(tmp_path, arbitrator, monkeypatch):
    import lab.drill.cluster as cluster
    import lab.drill.takeover as takeover

    drill = _drill(tmp_path, arbitrator, judging=steps.KILL.judges)
    monkeypatch.setattr(takeover, "fence", lambda drill, victim: True)
    monkeypatch.setattr(cluster, "survivor_holds", lambda drill, pool, label: True)
    monkeypatch.setattr(cluster, "look", lambda drill, label: None)
    take_over(drill, "ctrl-a")
    assert [r.claim for r in drill.results] == ["failover_by_cluster"]
    with pytest.raises(StepError, match="claim 'failover_by_cluster' was judged by a step that does not declare"):
        take_over(_drill(tmp_path / "undeclared", arbitrator, judging=()), "ctrl-a")


@pytest.mark.parametrize("step", [steps.FINAL, steps.PATHS_AND_POOLS], ids=lambda s: s.name)
def test_the_end_steps_declare_the_safety_claims_they_judge(tmp_path, step):
    drill = _drill(tmp_path, judging=step.judges)
    steps.safety(drill)
    assert [r.claim for r in drill.results] == ["no_double_import", "no_spurious_fencing"]
    undeclared = _drill(tmp_path / "undeclared", judging=tuple(c for c in step.judges if c != "no_double_import"))
    with pytest.raises(StepError, match="claim .no_double_import. was judged by a step that does not declare"):
        steps.safety(undeclared)
    assert [r.claim for r in undeclared.results] == ["no_spurious_fencing"]


def test_the_fio_check_judges_the_claim_its_step_names(tmp_path):
    drill = _drill(tmp_path, judging=steps.COPY_READ_BACK.judges)
    drill.session.stack = SimpleNamespace(client_workload="none", name="freebsd")  # no fio: judged all the same
    from lab.drill import workload

    drill.claims(workload.acknowledged_writes(drill, "after-fault", "acknowledged_writes_survive"))
    with pytest.raises(StepError, match="final_acknowledged_writes"):
        drill.claims(workload.acknowledged_writes(drill, "final", "final_acknowledged_writes"))


def test_the_faults_own_fencing_holds_under_the_final_steps_declaration(tmp_path):
    """One fencing of the victim after a fault that isolated it: both safety claims hold, neither undeclared."""
    drill = _drill(tmp_path, judging=steps.FINAL.judges)
    log = drill.session.provider.fence_log_path()
    log.write_text(json.dumps({"time_utc": "", "epoch": drill.facts["fault_at"] + 3, "requester": "ctrl-b",
                               "plug": "ctrl-a", "action": "off", "response": "success", "seqno": 1,
                               "state_before": "running", "seconds": 0.1}) + "\n")
    drill.nemesis = SimpleNamespace(isolates=True)
    steps.safety(drill)
    assert all(r.held for r in drill.results)
