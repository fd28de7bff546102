"""A nemesis only strikes and heals, records both, and never leaves a transient fault in effect."""

import json
from types import SimpleNamespace

import pytest

from lab.drill.context import Drill
from lab.drill.nemesis import CutLink, Freeze, PowerOff
from lab.providers.base import HostState
from lab.record import RunRecord


class Provider:
    def __init__(self):
        self.calls = []
        self.states = {}

    def status(self):
        return [SimpleNamespace(name=host, state=state) for host, state in self.states.items()]

    def set_link(self, host, network, up):
        self.calls.append(("link", host, network, up))

    def pause(self, host):
        self.calls.append(("pause", host))
        self.states[host] = HostState.PAUSED

    def resume(self, host):
        self.calls.append(("resume", host))
        self.states[host] = HostState.RUNNING

    def power_off(self, host):
        self.calls.append(("power_off", host))
        self.states[host] = HostState.STOPPED

    def start(self, host):
        self.calls.append(("start", host))
        self.states[host] = HostState.RUNNING


def _drill(tmp_path) -> tuple[Drill, Provider]:
    provider = Provider()
    session = SimpleNamespace(provider=provider, forget=lambda host: provider.calls.append(("forget", host)))
    return Drill(session, RunRecord.create(tmp_path, "t"), {}), provider


def _faults(drill: Drill) -> list[tuple]:
    events = [json.loads(line) for line in (drill.record.folder / "events.jsonl").read_text().splitlines()]
    return [(e["kind"], e["action"], e.get("network")) for e in events if e["kind"].startswith("fault")]


def test_a_cut_link_is_plugged_back_and_both_ends_are_recorded(tmp_path):
    drill, provider = _drill(tmp_path)
    nemesis = CutLink(network="private")
    nemesis.start(drill, "ctrl-a")
    nemesis.stop(drill, "ctrl-a")
    nemesis.stop(drill, "ctrl-a")
    assert provider.calls == [("link", "ctrl-a", "private", False), ("link", "ctrl-a", "private", True)]
    assert _faults(drill) == [("fault", "link-down", "private"), ("fault-undone", "link-up", "private")]
    assert "fault_at" in drill.facts


def test_teardown_heals_a_transient_fault_a_failed_step_left_but_never_restarts_a_killed_host(tmp_path):
    drill, provider = _drill(tmp_path)
    freeze, kill = Freeze(), PowerOff()
    freeze.start(drill, "ctrl-a")
    kill.start(drill, "ctrl-b")
    freeze.teardown(drill, "ctrl-a")
    kill.teardown(drill, "ctrl-b")
    assert provider.calls == [("pause", "ctrl-a"), ("power_off", "ctrl-b"), ("forget", "ctrl-b"),
                              ("resume", "ctrl-a")]
    assert kill.active and not freeze.active


def test_healing_a_power_off_starts_the_host_again(tmp_path):
    drill, provider = _drill(tmp_path)
    kill = PowerOff()
    kill.start(drill, "ctrl-a")
    first = drill.facts["fault_at"]
    kill.stop(drill, "ctrl-a")
    kill.start(drill, "ctrl-a")
    assert provider.calls[2:4] == [("start", "ctrl-a"), ("forget", "ctrl-a")]
    assert drill.facts["fault_at"] == first
    assert [f[:2] for f in _faults(drill)] == [("fault", "power-off"), ("fault-undone", "start"),
                                                ("fault", "power-off")]


def test_a_strike_that_fails_leaves_the_nemesis_inactive(tmp_path):
    drill, provider = _drill(tmp_path)

    def refuse(host, network, up):
        raise OSError("no such switch")

    provider.set_link = refuse
    nemesis = CutLink()
    with pytest.raises(OSError):
        nemesis.start(drill, "ctrl-a")
    assert not nemesis.active and _faults(drill) == []


def test_a_frozen_host_someone_powered_off_meanwhile_is_not_resumed_and_the_facts_say_so(tmp_path):
    drill, provider = _drill(tmp_path)
    freeze = Freeze()
    freeze.start(drill, "ctrl-a")
    provider.states["ctrl-a"] = HostState.STOPPED
    freeze.stop(drill, "ctrl-a")
    assert ("resume", "ctrl-a") not in provider.calls and not freeze.active
    assert "not resumed" in drill.facts["not_resumed"]
    assert _faults(drill)[-1] == ("fault-undone", "resume", None)
    last = json.loads((drill.record.folder / "events.jsonl").read_text().splitlines()[-1])
    assert last["healed"] is False


def test_only_faults_that_cut_a_host_off_from_its_peers_may_provoke_a_fence():
    assert PowerOff().isolates and Freeze().isolates and not CutLink(network="private").isolates


def test_isolating_a_host_pulls_every_lab_cable_and_plugs_them_back_only_into_a_host_still_running(tmp_path):
    from lab.drill.nemesis import Isolate
    from lab.topology import load_topology

    drill, provider = _drill(tmp_path)
    drill.session.topo = load_topology()
    provider.states["ctrl-a"] = HostState.RUNNING
    isolate = Isolate()
    isolate.start(drill, "ctrl-a")
    assert provider.calls == [("link", "ctrl-a", "private", False), ("link", "ctrl-a", "public", False)]
    isolate.stop(drill, "ctrl-a")
    assert provider.calls[2:] == [("link", "ctrl-a", "private", True), ("link", "ctrl-a", "public", True)]
    assert Isolate().isolates
    fenced = Isolate()
    fenced.start(drill, "ctrl-a")
    provider.states["ctrl-a"] = HostState.STOPPED
    before = list(provider.calls)
    fenced.stop(drill, "ctrl-a")
    assert provider.calls[len(before):] == [("forget", "ctrl-a")] and "no cable" in drill.facts["not_reconnected"]
