"""What the drill watches of a cluster that decides on its own (arbitrator = "cluster"): it never fences
or imports here, it waits to see the survivor take the lost controller's pool, and judges the fence log.

Also the run folder's cluster evidence: each controller's cluster views at each look, and at the end the
cluster's logs and the lab's fence log. In modes without a cluster the views are empty and the fence log
is whatever the lab's fence listener saw (nothing, when nobody asked it).
"""

from __future__ import annotations

import time
from pathlib import Path

from lab.drill import clock
from lab.drill.claims import Judged
from lab.drill.context import Drill, StepError
from lab.fence.log import FenceRequest, read_fence_log
from lab.runfolder import EventKind, Reason

TAKEOVER_TIMEOUT_S = 180
"""Detection (token + consensus, ~7 s), fencing, the forced import (20-32 s under TCG), the map switch:
three minutes means the cluster did not do it."""


POWER_ACTIONS = ("off", "reboot")


def fence_log_path(drill: Drill) -> Path | None:
    where = getattr(drill.session.provider, "fence_log_path", None)
    return Path(where()) if callable(where) else None


def fence_log(drill: Drill) -> list[FenceRequest]:
    """The fence listener's requests so far (none when the provider has no listener)."""
    path = fence_log_path(drill)
    return read_fence_log(path) if path is not None else []


def power_fencings(requests: list[FenceRequest]) -> list[FenceRequest]:
    return [r for r in requests if r.action in POWER_ACTIONS]


def look(drill: Drill, label: str) -> None:
    """Save every controller's cluster views (no cluster: nothing)."""
    views = drill.session.stack.cluster_views(drill.session.topo)
    for controller in drill.session.topo.controllers:
        for name, command in views.items():
            result = drill.session.run(controller.name, command, 30, f"cluster-{name}-{label}")
            drill.record.save(f"cluster/{controller.name}-{label}-{name}.txt", result.stdout + result.stderr)


def save_logs(drill: Drill) -> None:
    """The cluster's logs from each controller and the lab's fence log, into the run folder."""
    command = drill.session.stack.cluster_log_command(drill.session.topo)
    if command:
        for controller in drill.session.topo.controllers:
            result = drill.session.run(controller.name, command, 60, "cluster-log")
            drill.record.save(f"cluster/{controller.name}-journal.txt", result.stdout + result.stderr)
            if controller.name == drill.survivor and "fault_at" in drill.facts:
                drill.facts["takeover_timeline_s"] = drill.session.stack.takeover_timeline(
                    drill.session.topo, result.stdout, fault_on_clock_of(drill, controller.name), drill.victim)
    path = fence_log_path(drill)
    if path is not None and path.exists():
        drill.record.save("fence/requests.jsonl", path.read_text())


def fault_on_clock_of(drill: Drill, host: str) -> float:
    """The fault's host time as ``host``'s clock read it (its journal's times are its clock's), by a fresh
    reading of that clock; the host's time itself when the clock cannot be read."""
    reading = clock.read_clock(drill, host, "journal")
    fault = drill.facts["fault_at"]
    if reading is None:
        return fault
    drill.facts.setdefault("journal_clock_offsets_s", {})[host] = round(reading.offset_s, 4)
    return fault - reading.offset_s


def survivor_holds(drill: Drill, pool: str, label: str) -> bool:
    """Whether the survivor lists ``pool``; a status that cannot be read yet (zpool waits on an import
    in progress) is a no."""
    try:
        return pool in {s.name for s in drill.pool_status(drill.survivor, label)}
    except StepError:
        return False


def await_takeover(drill: Drill, victim: str) -> None:
    """Cluster mode, after the strike: watch, never act. Records when the survivor held the victim's pool
    and when the cluster fenced, and judges ``failover_by_cluster``."""
    topo = drill.session.topo
    pool = topo.pool_of(victim).name
    struck = drill.facts.get("fault_at", time.time())
    drill.on_progress(f"watching the cluster take {pool} over (it alone fences and imports)")
    deadline = time.monotonic() + TAKEOVER_TIMEOUT_S
    held = False
    while time.monotonic() < deadline:
        if survivor_holds(drill, pool, "takeover-watch"):
            held = True
            break
        time.sleep(1)
    seen = time.time()
    look(drill, "after-takeover")
    fenced = [a for a in power_fencings(fence_log(drill)) if a.plug == victim and a.epoch >= struck - 1]
    if held:
        seconds = round(seen - struck, 1)
        drill.facts["takeover_s"] = seconds
        drill.facts.setdefault("takeovers_s", []).append(seconds)
        drill.event(EventKind.TAKEN_OVER, failed=victim, survivor=drill.survivor, seconds=seconds, by="cluster")
    if fenced:
        drill.facts["fenced_after_s"] = round(fenced[0].epoch - struck, 1)
    judge_failover(drill, victim, pool, held, fenced, seen - struck)


def judge_failover(drill: Drill, victim: str, pool: str, held: bool, fenced: list[FenceRequest],
                   waited: float) -> None:
    fence_text = (f"{fenced[0].requester} had {victim} fenced ({fenced[0].action}: {fenced[0].response}) "
                  f"{drill.facts.get('fenced_after_s')} s after the fault" if fenced else f"nobody fenced {victim}")
    if drill.arbitrator != "cluster":
        evidence = f"no cluster in {drill.arbitrator} mode: " + (
            "the drill's oracle fenced and imported" if drill.arbitrator == "takeover"
            else "the survivor held the pool from the start")
        drill.claims(Judged("failover_by_cluster", False, evidence, reason=Reason.NOT_HELD))
        return
    ok = held and bool(fenced) and fenced[0].response == "success"
    where = (f"{drill.survivor} held {pool} {drill.facts.get('takeover_s')} s after the fault" if held
             else f"{drill.survivor} did not hold {pool} after {waited:.0f} s")
    drill.claims(Judged("failover_by_cluster", ok, f"{fence_text}; {where}", reason=Reason.NOT_HELD))


def judge_fencing(drill: Drill, caused: set[str]) -> None:
    """``no_spurious_fencing``: every power fencing targeted a controller the fault took from the cluster
    (``caused``), none came before the fault, none was refused or failed."""
    struck = drill.facts.get("fault_at")
    fencings = [a for a in power_fencings(fence_log(drill)) if a.epoch >= drill.record.started]
    spurious = []
    for action in fencings:
        if struck is None or action.epoch < struck - 1 or action.plug not in caused:
            spurious.append(f"{action.requester} fenced {action.plug} ({action.action}) "
                            f"{'before the fault' if struck is None or action.epoch < struck else 'unprovoked'}")
        elif action.response != "success":
            spurious.append(f"{action.requester}'s {action.action} of {action.plug} answered {action.response}")
    evidence = "; ".join(spurious) or (
        f"{len(fencings)} fencing(s), each of a controller the fault took away" if fencings else "no fencing")
    drill.claims(Judged("no_spurious_fencing", not spurious, evidence, reason=Reason.NOT_HELD))

