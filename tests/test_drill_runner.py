import pytest

from lab.drill.claims import Expectation
from lab.drill.runner import Drill, StepError
from lab.executor import CommandResult
from lab.record import RunRecord
from lab.stacks import get_stack


class NoPoolsSession:
    """A host that has imported no pool: OpenZFS says so on stderr and exits 0."""

    stack = get_stack("linux")

    def run(self, host, cmd, timeout=60, label=""):
        return CommandResult(cmd, 0, "", "no pools available\n", 0.1)


def test_a_controller_with_no_pool_imported_reads_as_no_pools(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"provisioned": Expectation.HOLD})
    assert drill.pool_status("ctrl-a", "final") == []
    assert (drill.record.folder / "zpool" / "ctrl-a-final.txt").read_text() == "no pools available\n"


def test_a_claim_expected_to_hold_may_fail_when_excused(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"final_paths_back": Expectation.HOLD})
    result = drill.claim("final_paths_back", False, "CTRL_A lost sda", excuse="ctrl-a did not recover")
    assert result.expected and result.effective_expectation is Expectation.MAYBE
    assert result.to_json()["excuse"] == "ctrl-a did not recover"
    with pytest.raises(StepError, match="did not hold but was expected to hold"):
        drill.claim("final_paths_back", False, "CTRL_A lost sda")


def test_an_excuse_does_not_turn_a_known_failure_into_maybe(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"failed_pool_clean": Expectation.FAIL})
    with pytest.raises(StepError, match="held but was expected to fail"):
        drill.claim("failed_pool_clean", True, "clean", excuse="whatever")


def test_held_answers_the_last_verdict_of_a_claim(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"recovery_imports": Expectation.MAYBE})
    assert drill.held("recovery_imports") is None
    drill.claim("recovery_imports", False, "I/O error")
    assert drill.held("recovery_imports") is False


def test_a_claim_checked_again_replaces_its_earlier_verdict(tmp_path):
    drill = Drill(NoPoolsSession(), RunRecord.create(tmp_path, "t"), {"recovery_imports": Expectation.MAYBE})
    drill.claim("recovery_imports", False, "timed out")
    drill.claim("recovery_imports", True, "imported again")
    assert [(r.claim, r.held) for r in drill.results] == [("recovery_imports", True)]
