"""steps.strike_during runs another step's work in a thread, strikes the victim part-way through it, waits
for it with a timeout and records what became of it; kill_during_recovery uses it, and checks the client
with the stack's own probe command (FreeBSD 10.3's dd has no oflag)."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab.drill import steps
from lab.drill.context import StepError
from lab.drill.scenario import load_scenario
from lab.result import CommandResult
from lab.stacks import get_stack
from lab.topology import load_topology

AFTER_S = 0.05


class Nemesis:
    def __init__(self):
        self.struck = threading.Event()
        self.strikes = []

    def start(self, drill, host):
        self.strikes.append((host, time.monotonic()))
        self.struck.set()


def _drill():
    return SimpleNamespace(nemesis=Nemesis(), victim="ctrl-a", facts={})


def test_the_strike_lands_while_the_work_runs_and_the_work_finishing_after_it_is_recorded():
    drill = _drill()
    began = []

    def work(d):
        began.append(time.monotonic())
        assert d.nemesis.struck.wait(5), "the strike came"

    struck = steps.strike_during(drill, work, AFTER_S, 5, what="the recovery", fact="interrupted_recovery")
    assert struck.outcome == drill.facts["interrupted_recovery"] == "the recovery finished after the strike"
    [(host, at)] = drill.nemesis.strikes
    assert host == "ctrl-a" and at - began[0] >= AFTER_S * 0.9 and struck.at <= time.time()


def test_work_that_failed_is_its_outcome_not_the_steps_failure():
    drill = _drill()

    def work(d):
        d.nemesis.struck.wait(5)
        raise StepError("ctrl-a: `zpool import` exited 1: I/O error")

    struck = steps.strike_during(drill, work, AFTER_S, 5, what="the recovery", fact="interrupted_recovery")
    assert struck.outcome == "ctrl-a: `zpool import` exited 1: I/O error"
    broken = steps.strike_during(_drill(), lambda d: {}["missing"], AFTER_S, 5, what="w", fact="f")
    assert broken.outcome == "KeyError: 'missing'"


def test_work_that_ended_before_the_strike_is_struck_all_the_same_after_the_delay():
    drill = _drill()
    started = time.monotonic()
    struck = steps.strike_during(drill, lambda d: None, AFTER_S, 5, what="the recovery", fact="outcome")
    assert struck.outcome == "the recovery finished before the strike"
    assert drill.nemesis.strikes[0][1] - started >= AFTER_S * 0.9


def test_work_still_running_when_the_wait_ends_is_said_so_and_left_to_run():
    drill = _drill()
    release = threading.Event()
    struck = steps.strike_during(drill, lambda d: release.wait(5), AFTER_S, 0.05, what="the recovery",
                                 fact="interrupted_recovery")
    assert struck.outcome == "the recovery still running after 0 s" and len(drill.nemesis.strikes) == 1
    release.set()


@pytest.mark.parametrize("stack", ["linux", "freebsd"])
def test_kill_during_recovery_strikes_during_the_recovery_and_checks_io_with_the_stacks_probe(stack, monkeypatch):
    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "kill_during_recovery.py")
    step = next(s for s in scenario.steps if s.name == "kill_it_again_during_its_recovery")
    topo, commands, events, claims = load_topology(None), [], [], []

    class Session:
        def run(self, host, cmd, timeout=60, label=""):
            commands.append((host, cmd, label))
            return CommandResult(cmd, exit_code=0, stdout="", stderr="")

    Session.topo, Session.stack = topo, get_stack(stack)
    drill = SimpleNamespace(session=Session(), nemesis=Nemesis(), victim="ctrl-a", facts={},
                            event=lambda kind, **data: events.append((kind, data)),
                            claims=lambda *judged: claims.extend(judged))
    monkeypatch.setattr(steps, "restart", lambda d: None)
    monkeypatch.setattr(steps, "recover", lambda d, label: "" if d.nemesis.struck.wait(5) else "never struck")
    monkeypatch.setitem(step.run.__globals__, "take_over", lambda d, victim: None)
    monkeypatch.setitem(step.run.__globals__, "KILL_INTO_RECOVERY_S", AFTER_S)
    step.run(drill)
    assert drill.facts["interrupted_recovery"] == "the recovery finished after the strike"
    assert drill.facts["second_kill_at"] <= time.time() and len(drill.nemesis.strikes) == 1
    [(host, command, label)] = commands
    probe = get_stack(stack).probe_write_read_command(f"{topo.client.mountpoint}/.beast-after-second-kill")
    assert (host, command, label) == (topo.client.host, probe, "io-after-second-kill")
    assert ("oflag" in command) is (stack == "linux")
    [judged] = claims
    assert judged.claim == "io_after_second_kill" and judged.held and "exited 0" in judged.evidence

