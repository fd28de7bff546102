"""The paper's experiment: copy a file, kill ctrl-a, check md5, scrub, recover. Steps run in file order.

Each step records what it observed in the run folder and checks the paper's claims against
scenarios/expectations.toml; the run fails on any verdict that file does not expect.
"""

from __future__ import annotations

import shlex
import time

import pytest

from lab.drill.paths import controllers_behind_dead_paths
from lab.drill.probe import longest_stall, parse_probe_log
from lab.drill.runner import Drill, StepError
from lab.errors import LabError
from lab.parsers.zpool import DataErrorsKind, PoolStatus, ScanState

pytestmark = pytest.mark.vm

SOURCE = "/root/beast-source.bin"
PROBE_LOG = "/root/beast-probe.log"
COPY_RC = "/root/beast-copy.rc"
COPY_TIMEOUT_S = 900
SCRUB_TIMEOUT_S = 600


def _failed_controller(drill: Drill) -> str:
    return drill.session.topo.controllers[0].name


def _survivor(drill: Drill) -> str:
    return drill.session.topo.controllers[1].name


def _copy_path(drill: Drill) -> str:
    return f"{drill.session.topo.client.mountpoint}/beast-copy.bin"


def _pool_problems(statuses: list[PoolStatus], host: str, pools: list[str]) -> list[str]:
    by_name = {p.name: p for p in statuses}
    problems = []
    for pool in pools:
        if pool not in by_name:
            problems.append(f"{host} has not imported {pool}")
        elif by_name[pool].state != "ONLINE":
            problems.append(f"{pool} is {by_name[pool].state} on {host}")
    return problems


def _path_problems(paths: dict[str, dict[str, str]], names: list[str]) -> list[str]:
    problems = []
    for name in names:
        states = paths.get(name, {})
        dead = [p for p, s in states.items() if s == "failed"]
        if len(states) != 2 or dead:
            problems.append(f"client multipath {name} has {len(states)} paths, failed: {', '.join(dead) or 'none'}")
    return problems


def _md5(drill: Drill, path: str, label: str) -> str:
    topo, stack = drill.session.topo, drill.session.stack
    return drill.must(topo.client.host, stack.md5_command(path), 300, label).strip()


def _remounted_md5(drill: Drill, label: str) -> tuple[str | None, str]:
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
    result = drill.session.run(client, stack.md5_command(_copy_path(drill)), 300, f"md5-{label}")
    if result.exit_code != 0:
        return None, f"reading the copy failed: {result.stderr.strip()[:200]}"
    return result.stdout.strip(), "read back after a remount"


def _claims(drill: Drill, *claims: tuple) -> None:
    """Record every claim (name, held, evidence[, excuse]), then fail with all the unexpected ones together."""
    errors = []
    for claim in claims:
        try:
            drill.claim(*claim)
        except StepError as error:
            errors.append(str(error))
    if errors:
        raise StepError("; ".join(errors))


def _scrub(drill: Drill, host: str, pool: str, label: str) -> PoolStatus:
    """Scrub one pool on one host and wait for the scan to end; the final status."""
    drill.must(host, f"zpool scrub {pool}", 60, f"scrub-{label}")

    def finished() -> PoolStatus | None:
        for status in drill.pool_status(host, f"scrub-{label}"):
            if status.name == pool and status.scan and status.scan.state is not ScanState.IN_PROGRESS:
                return status
        return None

    return drill.wait_for(f"the scrub of {pool} on {host}", finished, SCRUB_TIMEOUT_S)


def test_1_lab_is_provisioned_and_healthy(drill: Drill):
    topo = drill.session.topo
    pools = list(topo.pools)
    problems = []
    for controller in topo.controllers:
        problems += _pool_problems(drill.pool_status(controller.name, "before-fault"), controller.name, pools)
    problems += _path_problems(drill.client_paths("before-fault"), [m.name for m in topo.client.multipaths])
    drill.claim("provisioned", not problems,
                "; ".join(problems) or "both pools ONLINE on both controllers; every client multipath has 2 live paths")


def test_2_copy_starts(drill: Drill):
    drill.requires("test_1_lab_is_provisioned_and_healthy")
    topo, stack = drill.session.topo, drill.session.stack
    client = topo.client.host
    drill.must(client, stack.make_random_file_command(SOURCE, topo.drill.copy_size_mb), 300, "make-source")
    drill.facts["source_md5"] = _md5(drill, SOURCE, "md5-source")
    drill.must(client, f"rm -f {COPY_RC} {PROBE_LOG} {_copy_path(drill)}", 30)
    probe = stack.probe_command(topo, PROBE_LOG, topo.drill.probe_interval_s)
    drill.facts["probe_pid"] = drill.must(client, f"nohup sh -c {shlex.quote(probe)} >/dev/null 2>&1 & echo $!",
                                          30, "probe-start").strip()
    time.sleep(max(2.0, 4 * topo.drill.probe_interval_s))
    copy = f"cp {SOURCE} {_copy_path(drill)}; echo $? > {COPY_RC}"
    drill.must(client, f"nohup sh -c {shlex.quote(copy)} >/dev/null 2>&1 &", 30, "copy-start")
    drill.record.event("copy-started", size_mb=topo.drill.copy_size_mb)
    drill.facts["copy_started"] = time.time()


def test_3_kill_ctrl_a_during_the_copy(drill: Drill):
    drill.requires("test_2_copy_starts")
    topo = drill.session.topo
    time.sleep(topo.drill.kill_after_s)
    still_copying = drill.session.run(topo.client.host, f"test ! -e {COPY_RC}", 30, "copy-running").exit_code == 0
    drill.facts["copy_running_at_fault"] = still_copying
    failed = _failed_controller(drill)
    drill.session.power_off(failed)
    drill.facts["fault_at"] = time.time()
    if not still_copying:
        raise StepError("the copy had already finished when ctrl-a was killed: raise drill.copy_size_mb "
                        "or lower drill.kill_after_s in the topology")


def test_4_copy_finishes_through_the_survivor_and_md5_matches(drill: Drill):
    drill.requires("test_3_kill_ctrl_a_during_the_copy")
    topo = drill.session.topo
    client = topo.client.host

    def copy_rc() -> str | None:
        result = drill.session.run(client, f"cat {COPY_RC}", 30, "copy-wait")
        return result.stdout.strip() if result.exit_code == 0 and result.stdout.strip() else None

    rc = drill.wait_for("the copy to finish", copy_rc, COPY_TIMEOUT_S, interval=3)
    drill.facts["copy_seconds"] = round(time.time() - drill.facts["copy_started"], 1)
    drill.facts["copy_exit_code"] = int(rc)
    source = drill.facts["source_md5"]
    drill.injects("corrupt-copy", client, f"printf BEAST | dd of={_copy_path(drill)} bs=1 seek=4096 conv=notrunc")
    after_copy = _md5(drill, _copy_path(drill), "md5-after-copy")
    drill.facts["md5_after_copy"] = after_copy
    _collect_probe(drill)
    for host in topo.controllers[1:]:
        drill.pool_status(host.name, "after-fault")
    drill.client_paths("after-fault")
    from_disk, how = _remounted_md5(drill, "from-disk")
    drill.facts["md5_from_disk"] = from_disk
    _claims(
        drill,
        ("copy_completes", rc == "0", f"cp exited {rc} after {drill.facts['copy_seconds']} s"),
        ("md5_after_copy", after_copy == source, f"source {source}, copy {after_copy}"),
        ("md5_from_disk", from_disk == source, f"source {source}, from disk {from_disk} ({how})"),
    )


def _errors_summary(status: PoolStatus) -> str:
    counts = status.config.root
    entries = ", ".join(status.errors.entries) or "none"
    scan = status.scan.text if status.scan else "no scan"
    return (f"{status.name}: {status.state}, CKSUM {counts.checksum_errors}, scan '{scan}', "
            f"permanent errors: {entries}")


def test_5_scrub_on_the_survivor(drill: Drill):
    drill.requires("test_3_kill_ctrl_a_during_the_copy")
    topo = drill.session.topo
    survivor = _survivor(drill)
    own = topo.pool_of(survivor).name
    failed_pool = topo.pool_of(_failed_controller(drill)).name
    failed_status = _scrub(drill, survivor, failed_pool, "survivor-failed-pool")
    stack = drill.session.stack
    drill.injects("pool-error", survivor, stack.corrupt_disk_command(topo, topo.pool_of(survivor).data[0]))
    own_status = _scrub(drill, survivor, own, "survivor-own-pool")
    drill.facts["scrub_survivor"] = {s.name: _errors_summary(s) for s in (failed_status, own_status)}
    _claims(drill, *((claim, status.errors.kind is DataErrorsKind.NONE and status.state == "ONLINE",
                      _errors_summary(status))
                     for claim, status in (("survivor_pool_clean", own_status), ("failed_pool_clean", failed_status))))


def test_6_recovery_as_the_paper_describes(drill: Drill):
    drill.requires("test_3_kill_ctrl_a_during_the_copy")
    topo, stack, session = drill.session.topo, drill.session.stack, drill.session
    failed = _failed_controller(drill)
    session.start(failed)
    session.provider.wait_for_ssh(failed, topo.lab.boot_timeout_s)
    session.save_console(failed, "restarted")
    plan_error = ""
    try:
        session.apply(stack.recovery(topo, failed), "recovery")
    except LabError as error:
        plan_error = str(error)
        drill.facts["recovery_error"] = plan_error
    problems = _pool_problems(drill.pool_status(failed, "after-recovery"), failed, list(topo.pools))
    evidence = "; ".join(problems) or f"{failed} imported both pools again"
    if plan_error:
        evidence += f"; the recovery plan stopped: {plan_error}"
    _claims(drill, ("recovery_imports", not problems, evidence))


def test_7_final_state(drill: Drill):
    drill.requires("test_3_kill_ctrl_a_during_the_copy")
    topo = drill.session.topo
    problems = []
    for controller in topo.controllers:
        statuses = drill.pool_status(controller.name, "final")
        problems += [f"on {controller.name}: {_errors_summary(s)}" for s in statuses
                     if s.state != "ONLINE" or s.errors.kind is not DataErrorsKind.NONE]
        problems += _pool_problems(statuses, controller.name, list(topo.pools))
    first_map = topo.client.multipaths[0].name
    drill.injects("dead-path", topo.client.host, drill.session.stack.fail_client_path_command(topo, first_map))
    states = drill.client_paths("final")
    paths = _path_problems(states, [m.name for m in topo.client.multipaths])
    failed = _failed_controller(drill)
    paths_excuse = ""
    if paths and drill.held("recovery_imports") is False:
        behind = controllers_behind_dead_paths(topo, states, drill.client_path_portals("final"))
        if behind == {failed}:
            paths_excuse = (f"{failed} did not import its pools again (recovery_imports), so the paths it "
                            "serves cannot come back; every dead path leads to it")
    md5, how = _remounted_md5(drill, "final")
    drill.facts["md5_final"] = md5
    _claims(
        drill,
        ("final_pools_clean", not problems, "; ".join(problems) or "both pools ONLINE, no known data errors"),
        ("final_paths_back", not paths, "; ".join(paths) or "every client multipath has 2 live paths", paths_excuse),
        ("final_md5", md5 == drill.facts["source_md5"], f"source {drill.facts['source_md5']}, final {md5} ({how})"),
    )


def _collect_probe(drill: Drill) -> None:
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
