"""The takeover oracle: in arbitrator = "takeover", the drill itself fences the lost controller and lets
the survivor import its pool. No deployable system has such an oracle (it knows when the fault struck);
it stays until the cluster inside the lab decides takeover on its own (issue 14).
"""

from __future__ import annotations

import time

from lab.drill.cluster import await_takeover, judge_failover
from lab.drill.context import Drill, StepError
from lab.providers.base import HostState
from lab.runfolder import EventKind

FENCE_TIMEOUT_S = 30


def fence(drill: Drill, victim: str) -> bool:
    """The lab's STONITH: make sure ``victim`` is powered off before anyone takes its pool. Powers it off
    when it still runs (or is frozen); whether it is confirmed off."""
    provider = drill.session.provider
    deadline = time.monotonic() + FENCE_TIMEOUT_S
    state = _state(provider, victim)
    if state in (HostState.RUNNING, HostState.PAUSED):
        drill.event(EventKind.FENCE_POWER_OFF, host=victim, state=str(state))
        provider.power_off(victim)
    while (state := _state(provider, victim)) not in (HostState.STOPPED, HostState.ABSENT):
        if time.monotonic() > deadline:
            drill.event(EventKind.FENCE_FAILED, host=victim, state=str(state))
            return False
        time.sleep(1)
    drill.event(EventKind.FENCED, host=victim, state=str(state))
    return True


def _state(provider, host: str) -> HostState:
    return next(s.state for s in provider.status() if s.name == host)


def take_over(drill: Drill, victim: str) -> None:
    """In takeover mode: fence the lost controller, then let the survivor import its pool and serve it
    through the arbitrator map. The paper's mode does nothing here: its standby path is already there."""
    if drill.arbitrator == "cluster":
        await_takeover(drill, victim)
        return
    if drill.arbitrator != "takeover":
        judge_failover(drill, victim, drill.session.topo.pool_of(victim).name, True, [], 0.0)
        return
    drill.on_progress(f"takeover: fencing {victim}, then the survivor imports its pool")
    started = time.time()
    if not fence(drill, victim):
        raise StepError(f"fencing could not confirm {victim} is powered off: no takeover (the pool stays with it)")
    stack, topo = drill.session.stack, drill.session.topo
    drill.apply(stack.takeover(topo, victim), "takeover")
    seconds = round(time.time() - started, 1)
    drill.facts["takeover_s"] = seconds
    drill.facts.setdefault("takeovers_s", []).append(seconds)
    drill.event(EventKind.TAKEN_OVER, failed=victim, survivor=topo.peer(victim).name, seconds=seconds)
    judge_failover(drill, victim, topo.pool_of(victim).name, True, [], seconds)
