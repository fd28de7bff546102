"""The drill's own logic around faults: a pulled cable is always plugged back, and the run records both."""

import json
from types import SimpleNamespace

import pytest

from lab.drill import actions
from lab.drill.runner import Drill
from lab.record import RunRecord


class CableProvider:
    def __init__(self):
        self.calls = []

    def set_link(self, host, network, up):
        self.calls.append((host, network, up))


def _drill(tmp_path, provider) -> Drill:
    return Drill(SimpleNamespace(provider=provider), RunRecord.create(tmp_path, "t"), {})


def _events(drill: Drill) -> list[dict]:
    return [json.loads(line) for line in (drill.record.folder / "events.jsonl").read_text().splitlines()]


def test_a_cut_link_is_restored_and_both_ends_are_recorded(tmp_path):
    provider = CableProvider()
    drill = _drill(tmp_path, provider)
    with actions.link_cut(drill, "ctrl-a", "private"):
        assert provider.calls == [("ctrl-a", "private", False)]
    assert provider.calls[-1] == ("ctrl-a", "private", True)
    faults = [(e["kind"], e["action"]) for e in _events(drill) if e["kind"].startswith("fault")]
    assert faults == [("fault", "link-down"), ("fault-undone", "link-up")]
    assert "fault_at" in drill.facts


def test_a_failing_step_inside_the_cut_still_plugs_the_cable_back(tmp_path):
    provider = CableProvider()
    drill = _drill(tmp_path, provider)
    with pytest.raises(RuntimeError), actions.link_cut(drill, "ctrl-a", "public"):
        raise RuntimeError("the step broke")
    assert provider.calls == [("ctrl-a", "public", False), ("ctrl-a", "public", True)]
