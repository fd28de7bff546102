"""A kept drill's state round-trips, and rerunning a step starts from what the drill had learnt."""

import os

import pytest

from lab.drill.claims import Expectation
from lab.drill.context import Drill
from lab.drill.state import load_state, resume, save_state
from lab.errors import LabError
from lab.record import RunRecord
from lab.runfolder import StepResult, StepStatus

EXPECTATIONS = {"provisioned": Expectation.HOLD, "md5_after_copy": Expectation.HOLD}


def _drill(tmp_path, name="run") -> Drill:
    return Drill(None, RunRecord.create(tmp_path / name, "failover-paper"), dict(EXPECTATIONS))


def test_rerunning_a_step_starts_from_the_kept_facts_and_verdicts(tmp_path):
    kept = _drill(tmp_path, "first")
    kept.facts["source_md5"] = "ab" * 16
    kept.claim("provisioned", True, "fine")
    kept.steps += [StepResult(3, "test_3_kill", StepStatus.PASSED, 1.0),
                   StepResult(4, "test_4_copy_finishes", StepStatus.FAILED, 1.0, "no"),
                   StepResult(5, "test_5_scrub", StepStatus.FAILED, 1.0, "no")]
    save_state(kept, tmp_path, "failover")
    again = _drill(tmp_path, "second")
    resume(again, load_state(tmp_path, "failover", "paper"), "test_4_")
    assert again.facts["source_md5"] == "ab" * 16
    assert again.failed_steps == ["test_5_scrub"]
    assert again.held("provisioned") is True


def test_no_kept_drill_or_another_scenario_is_one_clear_line(tmp_path):
    with pytest.raises(LabError, match="no kept drill in .*: run the drill with --keep-lab always"):
        load_state(tmp_path, "failover", "paper")
    save_state(_drill(tmp_path), tmp_path, "freeze")
    with pytest.raises(LabError, match=r"was kept by freeze \(paper\), not failover \(takeover\)"):
        load_state(tmp_path, "failover", "takeover")


@pytest.mark.parametrize(("content", "why"), [
    ("[1, 2]", "it holds a JSON list, not an object"),
    ('{"scenario": "failover", "arbitrator": "paper", "facts": [1]}', "'facts' is a list, not a dict"),
    ('{"scenario": "failover", "arbitrator": "paper", "steps": 3}', "'steps' is a int, not a list"),
    ('{"scenario": "failover", "arbitrator": "paper", "steps": [{"index": 1, "name": "x", "status": "won"}]}',
     "step 'x'"),
    ('{"scenario": "failover", "arbitrator": "paper", "claims": [7]}', "claim 7 is not an object"),
    ('{"scenario": "failover", "arbitrator": "paper", "claims": [{"claim": "x", "expectation": "?"}]}',
     "claim 'x'"),
    ("not json", "Expecting value"),
])
def test_a_hand_edited_state_is_one_clear_line(tmp_path, content, why):
    (tmp_path / "drill-state.json").write_text(content)
    with pytest.raises(LabError, match="is damaged") as error:
        load_state(tmp_path, "failover", "paper")
    assert why in str(error.value) and "run the whole drill again" in str(error.value)


@pytest.mark.parametrize(("content", "why"), [
    ('{"scenario": "failover", "arbitrator": "paper", "facts": {"x": NaN}}', "it holds NaN"),
    ("[" * 100_000 + "]" * 100_000, "it is nested too deeply to read"),
    ('{"facts": {"x": ' + "9" * 5000 + "}}", "it holds a number this reader refuses"),
])
def test_a_state_json_does_not_allow_is_damaged_not_a_traceback(tmp_path, content, why):
    (tmp_path / "drill-state.json").write_text(content)
    with pytest.raises(LabError, match="is damaged") as error:
        load_state(tmp_path, "failover", "paper")
    assert why in str(error.value)


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_kept_state_that_is_not_a_file_is_never_read(tmp_path, kind):
    outside = tmp_path / "outside.json"
    outside.write_text('{"scenario": "failover", "arbitrator": "paper"}')
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "drill-state.json").symlink_to(outside) if kind == "symlink" else os.mkfifo(lab / "drill-state.json")
    with pytest.raises(LabError, match=f"drill-state.json is a {'symlink' if kind == 'symlink' else 'FIFO'}, not a "
                                       "file; it is not read; run the whole drill again"):
        load_state(lab, "failover", "paper")


def test_saving_the_state_replaces_a_hard_link_and_leaves_its_other_name_alone(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("keep\n")
    lab = tmp_path / "lab"
    lab.mkdir()
    os.link(outside, lab / "drill-state.json")
    save_state(_drill(tmp_path), lab, "failover")
    assert outside.read_text() == "keep\n"
    assert load_state(lab, "failover", "paper")["scenario"] == "failover"
