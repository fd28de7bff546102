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


def test_a_growing_copy_is_never_stalled_and_a_still_one_is_after_the_limit():
    watch = actions.StallWatch(limit_s=100)
    assert watch.stalled_for(None, 0) is None  # the file does not exist yet
    assert watch.stalled_for(10, 50) is None
    assert watch.stalled_for(20, 140) is None  # slow, but it grew
    assert watch.stalled_for(20, 239) is None
    assert watch.stalled_for(20, 240) == 100
    assert watch.stalled_for(None, 300) == 160  # an unreadable size is not growth


class StuckCopyClient:
    """A client whose copy stopped at 4 MiB: the copy never writes its exit code."""

    def __init__(self):
        self.commands = []

    def run(self, host, cmd, timeout=60, label=""):
        from lab.executor import CommandResult

        self.commands.append(cmd)
        return CommandResult(cmd, 0, "size 4194304\n", "", 0.1)


def test_a_copy_that_stops_growing_is_reported_stalled_long_before_its_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(actions, "COPY_STALL_S", 0.3)
    session = StuckCopyClient()
    session.topo = SimpleNamespace(client=SimpleNamespace(host="clnt-1", mountpoint="/mnt/beast"))
    drill = Drill(session, RunRecord.create(tmp_path, "t"), {})
    drill.facts["copy_started"] = 0.0
    monkeypatch.setattr(Drill, "wait_for", lambda self, what, probe, timeout, interval=2.0: _poll(probe))
    with pytest.raises(actions.CopyStalled, match=r"no progress for \d+ s \(its file stayed at 4194304 bytes\)"):
        actions.wait_for_copy(drill)
    assert drill.facts["copy_stalled_at_bytes"] == 4194304 and "copy_seconds" in drill.facts
    assert "/mnt/beast/beast-copy.bin" in session.commands[0]


def _poll(probe):
    """Drill.wait_for without its long timeout: gives up after about 10 s."""
    import time

    for _ in range(200):
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError("the copy was never reported stalled")


def test_the_session_knows_a_stopped_host_is_off():
    from lab.providers.base import HostState, HostStatus
    from lab.session import LabSession

    class Provider:
        def status(self):
            return [HostStatus("ctrl-a", HostState.STOPPED), HostStatus("ctrl-b", HostState.RUNNING)]

    session = LabSession(None, Provider(), None)
    assert session.is_powered_off("ctrl-a") and not session.is_powered_off("ctrl-b")
