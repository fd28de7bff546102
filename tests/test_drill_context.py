"""The Drill a step acts through: claims judged against expectations, facts read through the stack."""


import pytest

from lab.drill.claims import Expectation, Judged
from lab.drill.context import Drill, StepError
from lab.record import RunRecord
from lab.result import CommandResult
from lab.runfolder import Reason
from lab.stacks import get_stack
from lab.topology import load_topology


def answer(stdout="", stderr="", exit_code=0):
    return CommandResult("", exit_code=exit_code, stdout=stdout, stderr=stderr)


class Session:
    """Hosts that answer every command with one canned result."""

    stack = get_stack("linux")
    topo = load_topology(None)

    def __init__(self, result):
        self.result = result
        self.commands = []

    def run(self, host, cmd, timeout=60, label=""):
        self.commands.append((host, cmd, label))
        return self.result


def _drill(tmp_path, result=None, **expectations) -> Drill:
    return Drill(Session(result or answer()), RunRecord.create(tmp_path, "t"),
                 {k: Expectation(v) for k, v in expectations.items()}, victim="ctrl-a")


def test_a_controller_with_no_pool_imported_reads_as_no_pools(tmp_path):
    drill = _drill(tmp_path, answer(stderr="no pools available\n"))
    assert drill.pool_status("ctrl-a", "final") == []
    assert (drill.record.folder / "zpool" / "ctrl-a-final.txt").read_text() == "no pools available\n"
    assert drill.session.commands == [("ctrl-a", "zpool status -v", "pool-status-final")]


def test_a_fact_whose_command_fails_or_cannot_be_read_fails_the_step_naming_it(tmp_path):
    with pytest.raises(StepError, match=r"ctrl-b: pool-status \(`zpool status -v`\) exited 1: boom"):
        _drill(tmp_path, answer(stderr="boom", exit_code=1)).pool_status("ctrl-b", "x")
    with pytest.raises(StepError, match="clnt-1: client-paths output could not be read"):
        _drill(tmp_path / "2", answer(stdout="CTRL_A: garbage\n")).client_paths("x")


def test_a_claim_expected_to_hold_may_fail_when_excused(tmp_path):
    drill = _drill(tmp_path, final_paths_back="hold")
    result = drill.claim("final_paths_back", False, "CTRL_A lost sda", excuse="ctrl-a did not recover",
                         reason=Reason.PATHS_FAILED)
    assert result.expected and result.effective_expectation is Expectation.MAYBE
    assert result.to_json()["excuse"] == "ctrl-a did not recover" and result.reason is Reason.PATHS_FAILED
    with pytest.raises(StepError, match="did not hold but was expected to hold"):
        drill.claim("final_paths_back", False, "CTRL_A lost sda")


def test_a_claim_that_held_has_the_reason_confirmed_whatever_the_step_passed(tmp_path):
    drill = _drill(tmp_path, md5_from_disk="maybe")
    assert drill.claim("md5_from_disk", True, "same", reason=Reason.DATA_UNREADABLE).reason is Reason.CONFIRMED


def test_an_excuse_does_not_turn_a_known_failure_into_maybe(tmp_path):
    drill = _drill(tmp_path, failed_pool_clean="fail")
    with pytest.raises(StepError, match="held but was expected to fail"):
        drill.claim("failed_pool_clean", True, "clean", excuse="whatever")


def test_every_claim_of_a_step_is_recorded_before_it_fails_with_all_of_them(tmp_path):
    drill = _drill(tmp_path, copy_completes="hold", md5_after_copy="hold", md5_from_disk="maybe")
    with pytest.raises(StepError) as error:
        drill.claims(Judged("copy_completes", False, "cp exited 1"), Judged("md5_after_copy", False, "differs"),
                     Judged("md5_from_disk", False, "unreadable", reason=Reason.DATA_UNREADABLE, detail="EIO"))
    assert "copy_completes" in str(error.value) and "md5_after_copy" in str(error.value)
    assert [r.claim for r in drill.results] == ["copy_completes", "md5_after_copy", "md5_from_disk"]
    assert (drill.results[2].reason, drill.results[2].detail) == (Reason.DATA_UNREADABLE, "EIO")


def test_a_verdict_is_built_by_keyword_past_its_claim_held_and_evidence():
    with pytest.raises(TypeError):
        Judged("final_paths_back", False, "CTRL_A lost sda", "ctrl-a did not recover")
    judged = Judged("final_paths_back", False, "lost", excuse="ctrl-a did not recover", reason=Reason.PATHS_FAILED)
    assert (judged.excuse, judged.reason, judged.detail) == ("ctrl-a did not recover", Reason.PATHS_FAILED, "")


def test_held_answers_the_last_verdict_of_a_claim(tmp_path):
    drill = _drill(tmp_path, recovery_imports="maybe")
    assert drill.held("recovery_imports") is None
    drill.claim("recovery_imports", False, "I/O error")
    drill.claim("recovery_imports", True, "imported again")
    assert drill.held("recovery_imports") is True and len(drill.results) == 1
