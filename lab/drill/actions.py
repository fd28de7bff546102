"""What the scenarios do and observe on a lab, shared by every fault: the workload, the checks, fencing.

Scenarios call these with their Drill; each records what it saw in the run folder.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab.drill.probe import longest_stall, parse_probe_log
from lab.drill.runner import Drill, StepError
from lab.parsers.zpool import DataErrorsKind, PoolStatus, ScanState
from lab.providers.base import HostState

SOURCE = "/root/beast-source.bin"
PROBE_LOG = "/root/beast-probe.log"
COPY_RC = "/root/beast-copy.rc"
COPY_TIMEOUT_S = 900
COPY_STALL_S = 240
"""No growth of the copy for this long means stuck, not slow: a takeover stalls I/O for about 35 s here."""
SCRUB_TIMEOUT_S = 600
FENCE_TIMEOUT_S = 30


def copy_path(drill: Drill) -> str:
    return f"{drill.session.topo.client.mountpoint}/beast-copy.bin"


def pool_problems(statuses: list[PoolStatus], host: str, pools: list[str]) -> list[str]:
    by_name = {p.name: p for p in statuses}
    problems = []
    for pool in pools:
        if pool not in by_name:
            problems.append(f"{host} has not imported {pool}")
        elif by_name[pool].state != "ONLINE":
            problems.append(f"{pool} is {by_name[pool].state} on {host}")
    return problems


def expected_layout(drill: Drill) -> dict[str, list[str]]:
    """Which pools each controller holds on a healthy lab: the paper's cross import gives both pools to
    both controllers; the takeover arbitrator gives each controller its own pool only."""
    topo = drill.session.topo
    if drill.arbitrator == "takeover":
        return {c.name: [topo.pool_of(c.name).name] for c in topo.controllers}
    return {c.name: list(topo.pools) for c in topo.controllers}


def layout_problems(drill: Drill, label: str) -> list[str]:
    problems = []
    for controller, pools in expected_layout(drill).items():
        statuses = drill.pool_status(controller, label)
        problems += pool_problems(statuses, controller, pools)
        extra = sorted({s.name for s in statuses} - set(pools))
        problems += [f"{controller} has imported {pool}, which it should not hold" for pool in extra]
    return problems


def path_problems(paths: dict[str, dict[str, str]], names: list[str]) -> list[str]:
    problems = []
    for name in names:
        states = paths.get(name, {})
        dead = [p for p, s in states.items() if s == "failed"]
        if len(states) != 2 or dead:
            problems.append(f"client multipath {name} has {len(states)} paths, failed: {', '.join(dead) or 'none'}")
    return problems


def client_path_problems(drill: Drill, label: str) -> list[str]:
    return path_problems(drill.client_paths(label), [m.name for m in drill.session.topo.client.multipaths])


def md5(drill: Drill, path: str, label: str) -> str:
    topo, stack = drill.session.topo, drill.session.stack
    return drill.must(topo.client.host, stack.md5_command(path), 300, label).strip()


def remounted_md5(drill: Drill, label: str) -> tuple[str | None, str]:
    """The copy's md5 read back after a remount, or None and why the filesystem could not be read."""
    topo, stack = drill.session.topo, drill.session.stack
    client = topo.client.host
    for command in stack.remount_commands(topo):
        result = drill.session.run(client, command, 180, f"remount-{label}")
        if result.exit_code != 0:
            kernel = drill.session.run(client, "dmesg | tail -n 40", 30, f"dmesg-{label}").stdout
            drill.record.save(f"dmesg/{client}-{label}.txt", kernel)
            reason = (result.stderr or result.stdout).strip().splitlines()[:1] or ["no output"]
            last = kernel.strip().splitlines()[-1:] or [""]
            return None, f"`{command}` exited {result.exit_code}: {reason[0]}; kernel: {last[0].strip()}"
    result = drill.session.run(client, stack.md5_command(copy_path(drill)), 300, f"md5-{label}")
    if result.exit_code != 0:
        return None, f"reading the copy failed: {result.stderr.strip()[:200]}"
    return result.stdout.strip(), "read back after a remount"


def claims(drill: Drill, *checked: tuple) -> None:
    """Record every claim (name, held, evidence[, excuse]), then fail with all the unexpected ones together."""
    errors = []
    for claim in checked:
        try:
            drill.claim(*claim)
        except StepError as error:
            errors.append(str(error))
    if errors:
        raise StepError("; ".join(errors))


def errors_summary(status: PoolStatus) -> str:
    counts = status.config.root
    entries = ", ".join(status.errors.entries) or "none"
    scan = status.scan.text if status.scan else "no scan"
    return (f"{status.name}: {status.state}, CKSUM {counts.checksum_errors}, scan '{scan}', "
            f"permanent errors: {entries}")


def is_clean(status: PoolStatus) -> bool:
    return status.errors.kind is DataErrorsKind.NONE and status.state == "ONLINE"


def scrub(drill: Drill, host: str, pool: str, label: str) -> PoolStatus:
    """Scrub one pool on one host and wait for the scan to end; the final status."""
    drill.must(host, f"zpool scrub {pool}", 60, f"scrub-{label}")

    def finished() -> PoolStatus | None:
        for status in drill.pool_status(host, f"scrub-{label}"):
            if status.name == pool and status.scan and status.scan.state is not ScanState.IN_PROGRESS:
                return status
        return None

    return drill.wait_for(f"the scrub of {pool} on {host}", finished, SCRUB_TIMEOUT_S)


def start_copy(drill: Drill) -> None:
    """A file of random data with a known md5, copied to the client's filesystem in the background, with
    the client's I/O probe running beside it."""
    topo, stack = drill.session.topo, drill.session.stack
    client = topo.client.host
    drill.must(client, stack.make_random_file_command(SOURCE, topo.drill.copy_size_mb), 300, "make-source")
    drill.facts["source_md5"] = md5(drill, SOURCE, "md5-source")
    drill.must(client, f"rm -f {COPY_RC} {PROBE_LOG} {copy_path(drill)}", 30)
    probe = stack.probe_command(topo, PROBE_LOG, topo.drill.probe_interval_s)
    drill.facts["probe_pid"] = drill.must(client, f"nohup sh -c {shlex.quote(probe)} >/dev/null 2>&1 & echo $!",
                                          30, "probe-start").strip()
    time.sleep(max(2.0, 4 * topo.drill.probe_interval_s))
    copy = f"cp {SOURCE} {shlex.quote(copy_path(drill))}; echo $? > {COPY_RC}"
    drill.must(client, f"nohup sh -c {shlex.quote(copy)} >/dev/null 2>&1 &", 30, "copy-start")
    drill.record.event("copy-started", size_mb=topo.drill.copy_size_mb)
    drill.facts["copy_started"] = time.time()


def into_the_copy(drill: Drill) -> bool:
    """Wait the topology's ``drill.kill_after_s`` into the copy; whether it still runs (recorded as a fact)."""
    time.sleep(drill.session.topo.drill.kill_after_s)
    drill.facts["copy_running_at_fault"] = running = copy_is_running(drill)
    return running


def copy_is_running(drill: Drill) -> bool:
    client = drill.session.topo.client.host
    return drill.session.run(client, f"test ! -e {COPY_RC}", 30, "copy-running").exit_code == 0


class CopyStalled(StepError):
    """The copy's file stopped growing: the client lost its volume, waiting longer shows nothing new."""


@dataclass
class StallWatch:
    """Tells a copy that is slow from one that is stuck: how long its size has not grown."""

    limit_s: float
    size: int | None = None
    since: float | None = None

    def stalled_for(self, size: int | None, now: float) -> float | None:
        """Seconds without growth once they pass ``limit_s``, else None."""
        if self.since is None or (size is not None and (self.size is None or size > self.size)):
            self.size, self.since = size, now
            return None
        waited = now - self.since
        return waited if waited >= self.limit_s else None


def wait_for_copy(drill: Drill) -> str:
    """The copy's exit code, once it has finished; CopyStalled when its file stops growing for
    COPY_STALL_S (its full COPY_TIMEOUT_S would only wait on a client that lost its volume)."""
    client = drill.session.topo.client.host
    query = f"cat {COPY_RC} 2>/dev/null || ls -ln {copy_path(drill)} | awk '{{print \"size\", $5}}'"
    watch = StallWatch(COPY_STALL_S)

    def copy_rc() -> str | None:
        result = drill.session.run(client, query, 30, "copy-wait")
        words = result.stdout.split()
        if result.exit_code == 0 and words and words[0] != "size":
            return words[0]
        size = int(words[1]) if len(words) == 2 and words[1].isdigit() else None
        stalled = watch.stalled_for(size, time.monotonic())
        if stalled is not None:
            drill.facts["copy_stalled_at_bytes"] = watch.size
            raise CopyStalled(f"the copy made no progress for {stalled:.0f} s "
                              f"(its file stayed at {watch.size} bytes): the client lost its volume")
        return None

    try:
        rc = drill.wait_for("the copy to finish", copy_rc, COPY_TIMEOUT_S, interval=3)
    finally:
        drill.facts["copy_seconds"] = round(time.time() - drill.facts["copy_started"], 1)
    drill.facts["copy_exit_code"] = int(rc)
    return rc


def collect_probe(drill: Drill) -> None:
    client = drill.session.topo.client.host
    pid = drill.facts.pop("probe_pid", None)
    if pid:
        drill.session.run(client, f"kill {pid}; sleep 1", 30, "probe-stop")
    text = drill.must(client, f"cat {PROBE_LOG}", 60, "probe-log")
    drill.record.save("probe.log", text)
    samples = parse_probe_log(text)
    stall = longest_stall(samples)
    drill.facts["probe_samples"] = len(samples)
    drill.facts["probe_failures"] = sum(not s.ok for s in samples)
    drill.facts["failover_stall_s"] = stall.seconds if stall else None
    drill.facts["failover_stall_ongoing"] = bool(stall and stall.ongoing)


def fence(drill: Drill, victim: str) -> bool:
    """The lab's STONITH: make sure ``victim`` is powered off before anyone takes its pool. Powers it off
    when it still runs (or is frozen); whether it is confirmed off."""
    provider = drill.session.provider
    deadline = time.monotonic() + FENCE_TIMEOUT_S
    state = _state(provider, victim)
    if state in (HostState.RUNNING, HostState.PAUSED):
        drill.record.event("fence-power-off", host=victim, state=str(state))
        provider.power_off(victim)
    while (state := _state(provider, victim)) not in (HostState.STOPPED, HostState.ABSENT):
        if time.monotonic() > deadline:
            drill.record.event("fence-failed", host=victim, state=str(state))
            return False
        time.sleep(1)
    drill.record.event("fenced", host=victim, state=str(state))
    return True


def _state(provider, host: str) -> HostState:
    return next(s.state for s in provider.status() if s.name == host)


def take_over(drill: Drill, victim: str) -> None:
    """In takeover mode: fence the lost controller, then let the survivor import its pool and serve it
    through the arbitrator map. The paper's mode does nothing here: its standby path is already there."""
    if drill.arbitrator != "takeover":
        return
    started = time.time()
    if not fence(drill, victim):
        raise StepError(f"fencing could not confirm {victim} is powered off: no takeover (the pool stays with it)")
    stack, topo = drill.session.stack, drill.session.topo
    drill.session.apply(stack.takeover(topo, victim), "takeover")
    drill.facts["takeover_s"] = round(time.time() - started, 1)
    drill.record.event("taken-over", failed=victim, survivor=topo.peer(victim).name, seconds=drill.facts["takeover_s"])


PATHS_BACK_TIMEOUT_S = 120


def final_state_after_a_transient_fault(drill: Drill) -> None:
    """Once the fault is undone: the client's paths come back by themselves, and a scrub of each pool on
    its owner finds it clean."""
    topo = drill.session.topo
    try:
        drill.wait_for("every client path to come back", lambda: not client_path_problems(drill, "paths-back"),
                       PATHS_BACK_TIMEOUT_S, interval=5)
    except StepError:
        pass
    paths = client_path_problems(drill, "final")
    problems = []
    for controller in topo.controllers:
        status = scrub(drill, controller.name, topo.pool_of(controller.name).name, f"{controller.name}-own-final")
        if not is_clean(status):
            problems.append(f"on {controller.name}: {errors_summary(status)}")
    claims(
        drill,
        ("final_pools_clean", not problems, "; ".join(problems) or "each pool ONLINE on its owner, scrub clean"),
        ("final_paths_back", not paths, "; ".join(paths) or "every client multipath has 2 live paths"),
    )


def copy_finishes_and_reads_back(drill: Drill, survivor: str | None = None) -> None:
    """The copy's exit code and md5 right after it, then read back from disk after a remount (with the
    ``survivor``'s pools and the client's paths saved before). A copy that stalled is read back all the
    same: what the client then holds is the observation."""
    client = drill.session.topo.client.host
    try:
        rc = wait_for_copy(drill)
        finished = f"cp exited {rc} after {drill.facts['copy_seconds']} s"
    except CopyStalled as stalled:
        rc, finished = None, str(stalled)
        drill.client_paths("copy-stalled")
        kernel = drill.session.run(client, "dmesg | tail -n 60", 30, "dmesg-copy-stalled").stdout
        drill.record.save(f"dmesg/{client}-copy-stalled.txt", kernel)
    source = drill.facts["source_md5"]
    target = shlex.quote(f"of={copy_path(drill)}")
    drill.injects("corrupt-copy", client, f"printf BEAST | dd {target} bs=1 seek=4096 conv=notrunc")
    try:
        after_copy: str | None = md5(drill, copy_path(drill), "md5-after-copy")
        read = f"copy {after_copy}"
    except StepError as error:
        after_copy, read = None, f"the copy could not be read: {error}"
    drill.facts["md5_after_copy"] = after_copy
    collect_probe(drill)
    if survivor is not None:
        drill.pool_status(survivor, "after-fault")
        drill.client_paths("after-fault")
    from_disk, how = remounted_md5(drill, "from-disk")
    drill.facts["md5_from_disk"] = from_disk
    claims(
        drill,
        ("copy_completes", rc == "0", finished),
        ("md5_after_copy", after_copy == source, f"source {source}, {read}"),
        ("md5_from_disk", from_disk == source, f"source {source}, from disk {from_disk} ({how})"),
    )


@contextmanager
def link_cut(drill: Drill, host: str, network: str) -> Iterator[None]:
    """``host``'s cable on ``network`` pulled for the body of the ``with``, then plugged back in."""
    provider = drill.session.provider
    provider.set_link(host, network, up=False)
    try:
        drill.facts["fault_at"] = time.time()
        drill.record.event("fault", action="link-down", host=host, network=network)
        yield
    finally:
        provider.set_link(host, network, up=True)
        drill.record.event("fault-undone", action="link-up", host=host, network=network)
