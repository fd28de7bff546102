"""The run record: events of the schema's kinds only, commands written in the one result shape."""

from __future__ import annotations

import json

import pytest

from lab.record import RunRecord
from lab.result import CommandResult
from lab.runfolder import EventKind


def events(record: RunRecord) -> list[dict]:
    return [json.loads(line) for line in (record.folder / "events.jsonl").read_text().splitlines()]


def test_an_event_of_a_schema_kind_is_written_as_its_value(tmp_path):
    record = RunRecord.create(tmp_path, "t")
    record.event(EventKind.FAULT, action="power-off", host="ctrl-a")
    record.event("fault-undone", action="start", host="ctrl-a")
    assert [(e["kind"], e.get("host")) for e in events(record)] == [
        ("run-start", None), ("fault", "ctrl-a"), ("fault-undone", "ctrl-a")]


@pytest.mark.parametrize("kind", ["power-off", "Fault", "", "step_passed"])
def test_an_unknown_event_kind_is_a_bug_caught_at_once(tmp_path, kind):
    record = RunRecord.create(tmp_path, "t")
    with pytest.raises(ValueError, match=f"unknown event kind {kind!r}"):
        record.event(kind, host="ctrl-a")
    assert [e["kind"] for e in events(record)] == ["run-start"]


def test_a_command_that_timed_out_or_never_ran_says_so_in_the_host_log(tmp_path):
    record = RunRecord.create(tmp_path, "t")
    record.command(CommandResult("sleep 99", None, "partial\n", "", 5.0, host="ctrl-a", timed_out=True))
    record.command(CommandResult("true", None, "", "EOFError: lost", 0.1, host="ctrl-a"))
    log = (record.folder / "hosts" / "ctrl-a.log").read_text()
    assert log == "$ sleep 99   # [timed out] 5.00s\npartial\n$ true   # [not run] 0.10s\n[stderr]\nEOFError: lost\n"
    written = [json.loads(line) for line in (record.folder / "commands.jsonl").read_text().splitlines()]
    assert [(c["exit_code"], c["timed_out"]) for c in written] == [(None, True), (None, False)]
