"""The run-folder schema: what a drill writes is what the report reads back, and anything else is refused
with the field named."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.runfolder import (
    RESULTS_NAME,
    ClaimVerdict,
    Event,
    EventKind,
    Expectation,
    Reason,
    Results,
    RunIdentity,
    SchemaError,
    StepResult,
    StepStatus,
    read_results,
)

BEFORE_SCHEMA = Path(__file__).parent / "fixtures" / "runs" / "20261130T191158Z-failover-paper-before-schema"


def _results() -> Results:
    return Results(
        scenario="failover", stack="linux", fault="kill-ctrl-a", arbitrator="takeover", victim="ctrl-a",
        claims=[
            ClaimVerdict("copy_completes", True, "cp exited 0 after 32.5 s", Expectation.HOLD, Reason.CONFIRMED,
                         text="the copy finishes"),
            ClaimVerdict("md5_from_disk", False, "from disk None (mount exited 32)", Expectation.HOLD,
                         Reason.DATA_UNREADABLE, detail="wrong fs type", excuse="copy_completes did not hold"),
            ClaimVerdict("final_pools_clean", False, "ctrl-a_m0: DEGRADED", Expectation.HOLD, Reason.POOL_ERRORS),
        ],
        facts={"source_md5": "ab" * 16, "md5_from_disk": None, "scrub": {"ctrl-a_m0": "ONLINE"}, "stall": 12.5},
        steps=[StepResult(0, "copy_starts", StepStatus.PASSED, 8.41, ended_s=206.6),
               StepResult(1, "scrub", StepStatus.FAILED, None, "claim 'final_pools_clean' did not hold")],
        interrupted=True, recorded_failed_steps=["recovery"],
    )


def test_results_survive_a_round_trip_through_json():
    results = _results()
    text = json.dumps(results.to_json())
    assert Results.from_json(json.loads(text)) == results
    data = json.loads(text)
    assert data["failed_steps"] == ["scrub", "recovery"] and data["unexpected"] == ["final_pools_clean"]
    assert data["claims"][1]["expected"] is True, "an excused claim may go either way"
    assert data["claims"][1]["reason"] == "data-unreadable" and data["claims"][1]["detail"] == "wrong fs type"


def _set(path: tuple[str | int, ...], value):
    data = _results().to_json()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "field"), [
    (("scenario",), 5, "'scenario' is a int"),
    (("stack",), ["linux"], "'stack' is a list"),
    (("fault",), None, "'fault' is a NoneType"),
    (("arbitrator",), True, "'arbitrator' is a bool"),
    (("victim",), 1.5, "'victim' is a float"),
    (("claims",), {"a": 1}, "'claims' is a dict, not a list"),
    (("facts",), [1, 2], "'facts' is a list, not a dict"),
    (("steps",), "scrub", "'steps' is a str, not a list"),
    (("interrupted",), "yes", "'interrupted' is a str"),
    (("failed_steps",), {"a": 1}, "'failed_steps' is a dict"),
    (("failed_steps",), [3], "'failed_steps' holds something other than names"),
    (("unexpected",), 3, "'unexpected' is a int"),
    (("claims", 0, "held"), "yes", "claim 'copy_completes': 'held' is a str, not a bool"),
    (("claims", 0, "evidence"), None, "'evidence' is a NoneType"),
    (("claims", 0, "text"), 7, "'text' is a int"),
    (("claims", 0, "detail"), ["x"], "'detail' is a list"),
    (("claims", 0, "excuse"), False, "'excuse' is a bool"),
    (("claims", 0, "claim"), 4, "is not an object with a claim name"),
    (("claims", 0), "copy_completes", "is not an object with a claim name"),
    (("steps", 0, "index"), "0", "step 'copy_starts': 'index' is a str, not a int"),
    (("steps", 0, "index"), True, "'index' is a bool, not a int"),
    (("steps", 0, "name"), 0, "'name' is a int"),
    (("steps", 0, "duration_s"), "8.41", "'duration_s' is a str"),
    (("steps", 0, "duration_s"), False, "'duration_s' is a bool"),
    (("steps", 0, "ended_s"), [206.6], "'ended_s' is a list"),
    (("steps", 0, "error"), 1, "'error' is a int"),
    (("steps", 0), [], "step [] is not an object"),
])
def test_each_wrong_type_is_refused_naming_the_field(path, value, field):
    with pytest.raises(SchemaError, match=field.replace("[", r"\[").replace("(", r"\(")):
        Results.from_json(_set(path, value))


@pytest.mark.parametrize(("path", "value"), [
    (("claims", 0, "expectation"), "always"),
    (("claims", 0, "expectation"), ["hold"]),
    (("claims", 0, "expectation"), None),
    (("claims", 0, "reason"), "because"),
    (("claims", 0, "reason"), {"r": 1}),
    (("steps", 0, "status"), "skipped"),
])
def test_unknown_reasons_expectations_and_statuses_are_refused(path, value):
    with pytest.raises(SchemaError, match="is not a valid"):
        Results.from_json(_set(path, value))


@pytest.mark.parametrize("data", [[1], "results", None, 3])
def test_a_file_that_is_not_an_object_is_refused(data):
    with pytest.raises(SchemaError, match="not an object"):
        Results.from_json(data)


def test_a_results_json_from_before_the_schema_loads_with_defaults():
    """A real run's file, written before reason, detail and steps existed."""
    data = json.loads((BEFORE_SCHEMA / RESULTS_NAME).read_text())
    assert not {"steps"} & set(data) and all("reason" not in c and "detail" not in c for c in data["claims"])
    results = Results.from_json(data)
    assert (results.fault, results.arbitrator, results.victim) == ("kill-ctrl-a", "paper", "ctrl-a")
    assert [c.expected for c in results.claims] == [c["expected"] for c in data["claims"]]
    assert results.claim("md5_from_disk").reason is Reason.NOT_HELD
    assert results.claim("provisioned").reason is Reason.CONFIRMED
    assert results.unexpected == data["unexpected"] and results.steps == []
    old = Results.from_json({**data, "failed_steps": ["test_5_scrub_on_the_survivor"]})
    assert old.failed_steps == ["test_5_scrub_on_the_survivor"], "an old file's failed steps are kept"


def test_write_and_read_back(tmp_path):
    results = _results()
    path = results.write(tmp_path)
    assert path == tmp_path.resolve() / RESULTS_NAME
    assert read_results(tmp_path) == results
    assert read_results(tmp_path / "missing") is None


def test_write_refuses_a_symlinked_results_json(tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / RESULTS_NAME).symlink_to(victim)
    with pytest.raises(LabError, match="results.json is a symlink"):
        _results().write(run)
    assert victim.read_text() == "keep\n"


def test_write_replaces_a_hard_link_and_leaves_its_other_name_alone(tmp_path):
    """A results.json hard-linked to a file outside the run folder is a new file once written."""
    victim = tmp_path / "victim.json"
    victim.write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    os.link(victim, run / RESULTS_NAME)
    _results().write(run)
    assert victim.read_text() == "keep\n"
    assert read_results(run) == _results()
    assert sorted(p.name for p in run.iterdir()) == [RESULTS_NAME]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_write_refuses_a_fifo_or_directory_where_results_json_belongs(tmp_path, kind):
    target = tmp_path / RESULTS_NAME
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    with pytest.raises(LabError, match=f"results.json: it is a {'FIFO' if kind == 'fifo' else 'directory'}, "
                                       "not a file bst wrote; move it away and retry"):
        _results().write(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", r"results.json is damaged \("),
    ('{"claims": 5}', "results.json does not match the schema: 'claims' is a int"),
])
def test_read_results_says_what_is_wrong_in_one_line(tmp_path, text, message):
    (tmp_path / RESULTS_NAME).write_text(text)
    with pytest.raises(SchemaError, match=message) as error:
        read_results(tmp_path)
    assert "\n" not in str(error.value)


def test_identity_is_read_from_a_damaged_file_field_by_field():
    identity = RunIdentity.from_json({"scenario": "failover", "stack": 3, "claims": 5})
    assert identity == RunIdentity(scenario="failover")
    assert RunIdentity.from_json([1]) == RunIdentity()


def test_an_event_of_an_unknown_kind_is_kept_with_no_kind():
    event = Event.from_json({"ts": 1.5, "t": 0.5, "kind": "nemesis-started", "host": "ctrl-a"})
    assert (event.kind, event.raw_kind, event.ts, event.t, event.text("host")) == (
        None, "nemesis-started", 1.5, 0.5, "ctrl-a")
    assert Event.from_json({"kind": "run-start", "ts": True}).kind is EventKind.RUN_START
    assert Event.from_json({"kind": "run-start", "ts": True}).ts is None
    with pytest.raises(SchemaError):
        Event.from_json(["run-start"])


def test_the_fixture_is_a_copy_of_a_real_run(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(BEFORE_SCHEMA, folder)
    kinds = [Event.from_json(json.loads(line)).kind for line in (folder / "events.jsonl").read_text().splitlines()]
    assert kinds[0] is EventKind.RUN_START and None not in kinds
