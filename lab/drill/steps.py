"""The steps scenarios are made of: the paper's experiment, and what every transient fault shares.

A step acts through the ``Drill`` (workload, nemesis, the takeover oracle), gathers typed observations
and judges them with ``lab.drill.checks``; it never branches on provider or stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lab.drill import checks, cluster, fio_job, imports, workload
from lab.drill.claims import FAILOVER_CLAIMS, FINAL_FIO_CLAIM, FIO_CLAIM, SAFETY_CLAIMS, Judged
from lab.drill.context import Drill, StepError
from lab.drill.paths import controllers_behind_dead_paths
from lab.drill.scenario import Step
from lab.drill.takeover import take_over
from lab.errors import LabError
from lab.parsers.zpool import PoolStatus, ScanState
from lab.providers.base import HostState
from lab.runfolder import EventKind, Reason
from lab.stacks.shell import quote

SCRUB_TIMEOUT_S = 600
PATHS_BACK_TIMEOUT_S = 120


def observed_layout(drill: Drill, label: str) -> dict[str, list[PoolStatus]]:
    return {c.name: drill.pool_status(c.name, label) for c in drill.session.topo.controllers}


def layout(drill: Drill) -> dict[str, list[str]]:
    return checks.expected_layout(drill.session.topo, drill.arbitrator)


def client_path_problems(drill: Drill, label: str) -> list[str]:
    return checks.path_problems(drill.client_paths(label), [m.name for m in drill.session.topo.client.multipaths])


def scrub(drill: Drill, host: str, pool: str, label: str) -> PoolStatus:
    """Scrub one pool on one host and wait for the scan to end; the final status."""
    drill.on_progress(f"scrubbing {pool} on {host}")
    drill.must(host, drill.session.stack.scrub_command(pool), 60, f"scrub-{label}")

    def finished() -> PoolStatus | None:
        for status in drill.pool_status(host, f"scrub-{label}"):
            if status.name == pool and status.scan and status.scan.state is not ScanState.IN_PROGRESS:
                return status
        return None

    return drill.wait_for(f"the scrub of {pool} on {host}", finished, SCRUB_TIMEOUT_S)


def provisioned_and_healthy(drill: Drill) -> None:
    problems = (checks.layout_problems(observed_layout(drill, "before-fault"), layout(drill))
                + client_path_problems(drill, "before-fault"))
    where = ("both pools ONLINE on both controllers" if drill.arbitrator == "paper"
             else "each pool ONLINE on its owner only")
    drill.claims(Judged("provisioned", not problems,
                        "; ".join(problems) or f"{where}; every client multipath has 2 live paths",
                        reason=Reason.POOL_MISSING))


def copy_starts(drill: Drill) -> None:
    """The checker's watchers first (imports on each controller, the cluster's view), then the workload."""
    imports.start_watch(drill)
    cluster.look(drill, "before-fault")
    workload.start(drill)


def kill_during_the_copy(drill: Drill) -> None:
    """The nemesis strikes the victim during the copy; in takeover mode the survivor then takes over."""
    still_copying = workload.into_the_copy(drill)
    drill.nemesis.start(drill, drill.victim)
    if not still_copying:
        raise StepError(f"the copy had already finished when {drill.victim} was struck: raise drill.copy_size_mb "
                        "or lower drill.kill_after_s in the topology")
    take_over(drill, drill.victim)


def transient_fault(seconds: float, during: Callable[[Drill], None] = lambda drill: None) -> Callable[[Drill], None]:
    """A step that strikes during the copy, holds the fault ``seconds`` with ``during`` run half-way, then
    heals it (always, even when ``during`` fails)."""

    def strike(drill: Drill) -> None:
        workload.into_the_copy(drill)
        drill.nemesis.start(drill, drill.victim)
        try:
            drill.on_progress(f"{drill.nemesis.action} on {drill.victim} for {seconds:.0f} s")
            time.sleep(seconds / 2)
            during(drill)
            time.sleep(seconds / 2)
        finally:
            drill.nemesis.stop(drill, drill.victim)
        drill.facts["resumed_at"] = time.time()

    return strike


@dataclass(frozen=True)
class Struck:
    """A strike during another step's work (``strike_during``)."""

    at: float
    """When the nemesis struck (this host's time)."""
    outcome: str
    """What became of the work: its error, that it finished (before or after the strike), or that it still
    ran when the wait for it ended."""


def strike_during(drill: Drill, work: Callable[[Drill], None], after_s: float, join_s: float, what: str,
                  fact: str) -> Struck:
    """Run ``work`` (what another step does) in a thread of its own, strike the victim ``after_s`` seconds
    into it, then wait up to ``join_s`` for it to end; its outcome is recorded as the fact ``fact``. The work
    failing is its outcome, not this step's failure; one still running is left to run (its thread is a
    daemon's)."""
    ended: list[str] = []

    def run() -> None:
        try:
            work(drill)
        except (StepError, LabError) as error:
            ended.append(str(error))
        except Exception as error:  # noqa: BLE001 - any end of the work is its outcome, said in the facts
            ended.append(f"{type(error).__name__}: {error}")
        else:
            ended.append(f"{what} finished {'after' if struck else 'before'} the strike")

    struck: list[float] = []
    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    time.sleep(after_s)
    drill.nemesis.start(drill, drill.victim)
    struck.append(time.time())
    worker.join(join_s)
    outcome = ended[0] if ended else f"{what} still running after {join_s:.0f} s"
    drill.facts[fact] = outcome
    return Struck(struck[0], outcome)


def copy_finishes_and_reads_back(drill: Drill, survivor: str | None = None) -> None:
    """The copy's exit code and md5 right after it, then read back from disk after a remount (with the
    ``survivor``'s pools and the client's paths saved before). A copy that stalled is read back all the
    same: what the client then holds is the observation."""
    client = drill.session.topo.client.host
    copy_reason = Reason.COPY_FAILED
    try:
        rc = workload.wait(drill)
        finished = f"cp exited {rc} after {drill.facts['copy_seconds']} s"
    except workload.CopyStalled as stalled:
        rc, finished, copy_reason = None, str(stalled), Reason.COPY_STALLED
        drill.client_paths("copy-stalled")
        kernel = drill.session.run(client, "dmesg | tail -n 60", 30, "dmesg-copy-stalled").stdout
        drill.record.save(f"dmesg/{client}-copy-stalled.txt", kernel)
    source = drill.facts["source_md5"]
    target = quote(f"of={workload.copy_path(drill)}")
    drill.injects("corrupt-copy", client, f"printf BEAST | dd {target} bs=1 seek=4096 conv=notrunc")
    try:
        after_copy: str | None = workload.md5(drill, workload.copy_path(drill), "md5-after-copy")
        read, read_reason = f"copy {after_copy}", Reason.DATA_DIFFERS
    except StepError as error:
        after_copy, read, read_reason = None, f"the copy could not be read: {error}", Reason.DATA_UNREADABLE
    drill.facts["md5_after_copy"] = after_copy
    written = workload.collect(drill)
    corrupt = fio_job.corrupt_command(drill, written.samples) if written else None
    if corrupt:
        drill.injects("corrupt-fio-block", client, corrupt)
    if survivor is not None:
        drill.pool_status(survivor, "after-fault")
        drill.client_paths("after-fault")
    back = workload.remounted_md5(drill, "from-disk")
    drill.facts["md5_from_disk"] = back.md5
    fio_claim = workload.acknowledged_writes(drill, "after-fault", FIO_CLAIM)
    drill.claims(
        Judged("copy_completes", rc == "0", finished, reason=copy_reason),
        Judged("md5_after_copy", after_copy == source, f"source {source}, {read}", reason=read_reason),
        Judged("md5_from_disk", back.md5 == source, f"source {source}, from disk {back.md5} ({back.how})",
               reason=Reason.DATA_DIFFERS if back.md5 else Reason.DATA_UNREADABLE, detail=back.detail),
        fio_claim,
    )


def copy_finishes_through_the_survivor(drill: Drill) -> None:
    copy_finishes_and_reads_back(drill, survivor=drill.survivor)


def scrub_on_the_survivor(drill: Drill) -> None:
    topo, stack = drill.session.topo, drill.session.stack
    survivor = drill.survivor
    failed_status = scrub(drill, survivor, topo.pool_of(drill.victim).name, "survivor-failed-pool")
    drill.injects("pool-error", survivor, stack.corrupt_disk_command(topo, topo.pool_of(survivor).data[0]))
    own_status = scrub(drill, survivor, topo.pool_of(survivor).name, "survivor-own-pool")
    drill.facts["scrub_survivor"] = {s.name: checks.errors_summary(s) for s in (failed_status, own_status)}
    drill.claims(*(Judged(claim, checks.is_clean(status), checks.errors_summary(status), reason=Reason.POOL_ERRORS)
                   for claim, status in (("survivor_pool_clean", own_status), ("failed_pool_clean", failed_status))))


def restart(drill: Drill) -> None:
    """The nemesis heals (the victim is started again) and the drill waits for it to boot."""
    drill.nemesis.stop(drill, drill.victim)
    drill.on_progress(f"{drill.victim}: booting")
    drill.session.provider.wait_for_ssh(drill.victim, drill.session.topo.lab.boot_timeout_s)
    drill.session.save_console(drill.victim, "restarted")
    imports.start_watch(drill, [drill.victim], fresh=False)


def recover(drill: Drill, label: str) -> str:
    """The stack's recovery plan on the restarted victim, with the client's probe beside it (the fact
    ``<label>_stall_s``: what giving the pool back cost the client); the plan's error, or "" when it went
    through."""
    drill.on_progress(f"{drill.victim}: the recovery plan")
    with workload.probing(drill, label):
        try:
            drill.apply(drill.session.stack.recovery(drill.session.topo, drill.victim), label)
        except LabError as error:
            return str(error)
    return ""


def fenced_controller_recovers(drill: Drill) -> None:
    """A controller the system itself powered off during the fault (a cluster fencing it) is started again
    and the stack's recovery plan run, as an operator would; one that still runs is left alone."""
    victim = drill.victim
    state = next((s.state for s in drill.session.provider.status() if s.name == victim), None)
    if state is not HostState.STOPPED:
        drill.facts["fenced_restart"] = f"{victim} was {state} after the fault: nothing to restart"
        return
    drill.event(EventKind.ACTION, action="restart-fenced", host=victim)
    drill.on_progress(f"{victim} was powered off during the fault: starting it")
    drill.session.provider.start(victim)
    drill.session.forget(victim)
    drill.session.provider.wait_for_ssh(victim, drill.session.topo.lab.boot_timeout_s)
    drill.session.save_console(victim, "restarted")
    imports.start_watch(drill, [victim], fresh=False)
    plan_error = recover(drill, "recovery-after-fence")
    drill.facts["fenced_restart"] = f"{victim} started again; recovery: {plan_error or 'went through'}"
    if plan_error:
        raise StepError(f"the recovery of {victim} after it was fenced stopped: {plan_error}")


def recovery_as_the_paper_describes(drill: Drill) -> None:
    failed = drill.victim
    drill.facts.pop("recovery_error", None)
    restart(drill)
    plan_error = recover(drill, "recovery")
    if plan_error:
        drill.facts["recovery_error"] = plan_error
    wanted = layout(drill)[failed]
    problems = checks.pool_problems(drill.pool_status(failed, "after-recovery"), failed, wanted)
    evidence = "; ".join(problems) or f"{failed} imported {' and '.join(wanted)} again"
    if plan_error:
        evidence += f"; the recovery plan stopped: {plan_error}"
    drill.claims(Judged("recovery_imports", not problems, evidence, reason=Reason.RECOVERY_FAILED))


def final_state(drill: Drill) -> None:
    topo = drill.session.topo
    observed = observed_layout(drill, "final")
    problems = checks.layout_problems(observed, layout(drill)) + checks.unclean_pools(observed, layout(drill))
    first_map = topo.client.multipaths[0].name
    drill.injects("dead-path", topo.client.host, drill.session.stack.fail_client_path_command(topo, first_map))
    states = drill.client_paths("final")
    paths = checks.path_problems(states, [m.name for m in topo.client.multipaths])
    paths_excuse = ""
    if paths and drill.held("recovery_imports") is False:
        behind = controllers_behind_dead_paths(topo, states, drill.client_path_portals("final"))
        if behind == {drill.victim}:
            paths_excuse = (f"{drill.victim} did not import its pools again (recovery_imports), so the paths it "
                            "serves cannot come back; every dead path leads to it")
    back = workload.remounted_md5(drill, "final")
    drill.facts["md5_final"] = back.md5
    source = drill.facts["source_md5"]
    fio_claim = workload.acknowledged_writes(drill, "final", FINAL_FIO_CLAIM)
    cluster.look(drill, "final")
    drill.all_of(lambda: drill.claims(
        Judged("final_pools_clean", not problems,
               "; ".join(problems) or "every pool ONLINE where it belongs, no known data errors",
               reason=Reason.POOL_ERRORS),
        Judged("final_paths_back", not paths, "; ".join(paths) or "every client multipath has 2 live paths",
               reason=Reason.PATHS_FAILED, excuse=paths_excuse),
        Judged("final_md5", back.md5 == source, f"source {source}, final {back.md5} ({back.how})",
               reason=Reason.DATA_DIFFERS if back.md5 else Reason.DATA_UNREADABLE, detail=back.detail),
        fio_claim,
    ), lambda: safety(drill))


def safety(drill: Drill) -> None:
    """What must hold through any fault, judged at the end from the whole run's history: no pool imported on
    two controllers at once (the watchers' logs), and no fencing the fault did not provoke (the fence log)."""
    fenced = [(a.plug, a.epoch) for a in cluster.power_fencings(cluster.fence_log(drill)) if a.response == "success"]
    provoked = {drill.victim} if drill.nemesis is not None and drill.nemesis.isolates else set()
    drill.all_of(lambda: imports.judge(drill, fenced), lambda: cluster.judge_fencing(drill, provoked))


def paths_come_back_and_pools_are_clean(drill: Drill) -> None:
    """Once the fault is healed: the client's paths come back by themselves, and a scrub of each pool on
    its owner finds it clean."""
    topo = drill.session.topo
    try:
        drill.wait_for("every client path to come back", lambda: not client_path_problems(drill, "paths-back"),
                       PATHS_BACK_TIMEOUT_S, interval=5)
    except StepError:
        pass
    paths = client_path_problems(drill, "final")
    cluster.look(drill, "final")
    problems = []
    for controller in topo.controllers:
        status = scrub(drill, controller.name, topo.pool_of(controller.name).name, f"{controller.name}-own-final")
        if not checks.is_clean(status):
            problems.append(f"on {controller.name}: {checks.errors_summary(status)}")
    fio_claim = workload.acknowledged_writes(drill, "final", FINAL_FIO_CLAIM)
    drill.all_of(lambda: drill.claims(
        Judged("final_pools_clean", not problems, "; ".join(problems) or "each pool ONLINE on its owner, scrub clean",
               reason=Reason.POOL_ERRORS),
        Judged("final_paths_back", not paths, "; ".join(paths) or "every client multipath has 2 live paths",
               reason=Reason.PATHS_FAILED),
        fio_claim,
    ), lambda: safety(drill))


HEALTHY = Step("lab_is_provisioned_and_healthy", provisioned_and_healthy, judges=("provisioned",))
COPY = Step("copy_starts", copy_starts)
COPY_READ_BACK = Step("copy_finishes_and_reads_back", copy_finishes_and_reads_back,
                      judges=("copy_completes", "md5_after_copy", "md5_from_disk", FIO_CLAIM))
PATHS_AND_POOLS = Step("paths_come_back_and_pools_are_clean", paths_come_back_and_pools_are_clean,
                       judges=("final_pools_clean", "final_paths_back", FINAL_FIO_CLAIM, *SAFETY_CLAIMS))
KILL = Step("kill_a_controller_during_the_copy", kill_during_the_copy, strikes=True, judges=FAILOVER_CLAIMS)
"""take_over judges who took over in every mode (in paper and takeover modes: not the cluster)."""
RECOVERY = Step("recovery_as_the_paper_describes", recovery_as_the_paper_describes, judges=("recovery_imports",))
FINAL = Step("final_state", final_state,
             judges=("final_pools_clean", "final_paths_back", "final_md5", FINAL_FIO_CLAIM, *SAFETY_CLAIMS))
PAPER_STEPS = (
    HEALTHY,
    COPY,
    KILL,
    Step("copy_finishes_through_the_survivor_and_md5_matches", copy_finishes_through_the_survivor,
         judges=COPY_READ_BACK.judges),
    Step("scrub_on_the_survivor", scrub_on_the_survivor, judges=("survivor_pool_clean", "failed_pool_clean")),
    RECOVERY,
    FINAL,
)
"""The paper's experiment: copy a file, kill a controller, check md5, scrub, recover, final state."""
