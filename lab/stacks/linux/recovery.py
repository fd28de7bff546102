"""The Linux stack's plans after a controller failed: the paper's recovery (export, reboot, import, scrub,
clear, rebuild), and in arbitrator = "takeover" mode the survivor's takeover and the takeback that hands
the pool to its restarted owner.

Callers validate the failed controller's name and the arbitrator mode first (``LinuxStack``). The rebuilding
steps are provisioning's own (``pools``, ``targets``); nothing here knows what the drill asks of hosts.
"""

from __future__ import annotations

from dataclasses import replace

from lab.plan import Plan, Step
from lab.stacks.base import RecoveryStage, TakebackStage
from lab.stacks.checks import pool_imported, pool_online, property_is, wait_until
from lab.stacks.linux.parts import BOOT_TIME, EXPORTED_AT, IMPORTED_AT, STATE_DIR, lun_path, zvol_device
from lab.stacks.linux.pools import base_steps, import_devices, import_step, reread_partitions_commands
from lab.stacks.linux.targets import (
    arbitrator_map_step,
    arbitrator_steps,
    client_steps,
    private_target_step,
    public_target_step,
    takeover_arbitrator_steps,
)
from lab.stacks.shell import quote, words
from lab.topology import Host, Topology


def recovery_plan(topo: Topology, failed: str) -> Plan:
    """The paper's prose after the failed controller was booted again: export, reboot, import, scrub on
    both, clear, then the arbitrator, the public target and the client's paths once more. The base
    steps come again after the reboot (skipped unless the host came back with a fresh root disk).
    The steps that rebuild are provisioning's own: their checks skip what survived (the survivor's
    target, the client's stripe) and redo what did not (sessions, failed paths, the primary path)."""
    survivor = topo.peer(failed)
    if topo.lab.arbitrator == "takeover":
        return takeback_plan(topo, failed)
    names = [h.name for h in topo.controllers]
    host = topo.hosts[failed]
    pools = [topo.pool_of(name) for name in names]
    plan: Plan = {failed: [], survivor.name: [], topo.client.host: []}
    plan[failed] += [
        release_step(topo, host),
        reboot_step(),
        *[replace(step, stage=RecoveryStage.IMPORT) for step in base_steps(topo, host)],
        *[import_step(topo, pool, RecoveryStage.IMPORT, expect_refusal=False) for pool in pools],
        *[scrub_step(pool.name, RecoveryStage.SCRUB_ON_FAILED) for pool in pools],
    ]
    plan[survivor.name] += [scrub_step(pool.name, RecoveryStage.SCRUB_ON_SURVIVOR) for pool in pools]
    for name in (failed, survivor.name):
        plan[name] += [clear_step(pool.name) for pool in pools]
    plan[failed] += [
        private_target_step(topo, host, RecoveryStage.PRIVATE_TARGET),
        *arbitrator_steps(topo, host, RecoveryStage.ARBITRATOR),
        public_target_step(topo, host, RecoveryStage.PUBLIC_TARGET),
    ]
    plan[survivor.name] += arbitrator_steps(topo, survivor, RecoveryStage.ARBITRATOR)
    plan[topo.client.host] += client_steps(topo, RecoveryStage.CLIENT)
    return plan


def takeover_plan(topo: Topology, failed: str) -> Plan:
    """Takeover mode, on the survivor, once ``failed`` is confirmed powered off (the caller fences it;
    nothing here checks): import the failed controller's pool with -f, wait for its zvol, and reload
    the arbitrator map with that zvol as a second priority group, in use from then on. The map stays
    open under LIO; I/O it queued meanwhile goes to the zvol.

    -f only overrides "last imported on another host": with multihost=on OpenZFS first watches the
    disks for the owner's MMP writes (fail_intervals x interval x 2, see MULTIHOST_TUNABLES) and
    refuses the import while the owner is alive, so a takeover from a live controller fails here
    instead of corrupting the pool."""
    survivor = topo.peer(failed)
    pool = topo.pool_of(failed)
    iscsi = lun_path(topo.hosts[failed].address("private"), topo.iscsi.private_target, 0)
    zvol = zvol_device(pool)
    stage = 0
    return {survivor.name: [
        Step(f"import {pool.name} -f",
             commands=(*reread_partitions_commands(topo, pool),
                       f"zpool import -f -N {import_devices(topo, pool)} {quote(pool.name)}"),
             check=pool_imported(pool.name),
             verify=f"{pool_online(pool.name)} && {property_is(pool.name, 'multihost', 'on', 'zpool')}",
             stage=stage),
        Step(f"volume {pool.zvol_path}", commands=(wait_until(f"[ -b {quote(zvol)} ]"),),
             check=f"[ -b {quote(zvol)} ]", verify=f"[ -b {quote(zvol)} ]", stage=stage),
        arbitrator_map_step(pool.arbitrator, [iscsi, zvol], stage,
                                 f"multipath {pool.arbitrator} + {zvol}"),
    ]}


def takeback_plan(topo: Topology, failed: str) -> Plan:
    """Takeover mode: the restarted controller gets its pool back (stages: TakebackStage).

    The survivor first drops its zvol path from the arbitrator map (back to the iSCSI path alone, which
    queues I/O: the client's commands for this volume wait from here until the owner serves it again)
    and exports the pool; only then does the owner import it, without -f (an import that needs -f here
    means the survivor still has it, and fails the step). Then the owner's private target, both
    arbitrators (the survivor's session reconnects, its map's path is reinstated), the owner's public
    target, the client's paths; each controller scrubs and clears its own pool last."""
    host = topo.hosts[failed]
    pool = topo.pool_of(failed)
    iscsi = lun_path(host.address("private"), topo.iscsi.private_target, 0)
    stage = TakebackStage
    zvol_devno = f"$(lsblk -dno MAJ:MIN {quote(zvol_device(pool))} | tr -d ' ')"
    uses_zvol = (f"[ -b {quote(zvol_device(pool))} ] && dmsetup table {quote(pool.arbitrator)} 2>/dev/null "
                 f"| grep -qw {zvol_devno}")
    exported = f"! {pool_imported(pool.name)}"
    release = Step(
        f"hand back {pool.name}",
        commands=(f"if {uses_zvol}; then beast-dm-arbitrator {words(pool.arbitrator, iscsi)}; fi",
                  f"i=0; until zpool export {quote(pool.name)}; do [ $i -ge 10 ] && exit 1; "
                  f"i=$((i + 1)); sleep 1; done"),
        check=exported, verify=exported, stage=stage.RELEASE)
    own_import = Step(
        f"import {pool.name}",
        commands=(*reread_partitions_commands(topo, pool),
                  f"zpool import -N {import_devices(topo, pool)} {quote(pool.name)}"),
        check=pool_imported(pool.name),
        verify=f"{pool_online(pool.name)} && {property_is(pool.name, 'multihost', 'on', 'zpool')}",
        stage=stage.IMPORT)
    return pool_back_plan(topo, failed, [own_import], [release])


def pool_back_plan(topo: Topology, failed: str, owner_gets_pool: list[Step], survivor_first: list[Step]) -> Plan:
    """The takeback's shape (stages: TakebackStage), whoever moves the pool: the survivor's
    ``survivor_first`` steps, the restarted owner's base steps and ``owner_gets_pool``, then the owner's
    private target, both arbitrator maps, the owner's public target, the client's paths, and each
    controller's scrub and clear of its own pool."""
    host = topo.hosts[failed]
    survivor = topo.peer(failed)
    stage = TakebackStage
    plan: Plan = {failed: [], survivor.name: list(survivor_first), topo.client.host: []}
    plan[failed] += [
        *[replace(step, stage=stage.IMPORT) for step in base_steps(topo, host)],
        *owner_gets_pool,
        private_target_step(topo, host, stage.PRIVATE_TARGET),
        *takeover_arbitrator_steps(topo, host, stage.ARBITRATOR),
        public_target_step(topo, host, stage.PUBLIC_TARGET),
    ]
    plan[survivor.name] += takeover_arbitrator_steps(topo, survivor, stage.ARBITRATOR)
    plan[topo.client.host] += client_steps(topo, stage.CLIENT)
    for name in (failed, survivor.name):
        own = topo.pool_of(name)
        plan[name] += [scrub_step(own.name, stage.SCRUB), replace(clear_step(own.name), stage=stage.CLEAR)]
    return plan


def release_step(topo: Topology, host: Host) -> Step:
    """The paper's export right after boot. First let go of every zvol (LIO, the arbitrator map, the
    sessions behind it). Done when no pool is imported, or when this boot's recovery imported them."""
    pools = [topo.pool_of(h.name).name for h in topo.controllers]
    arbitrator = quote(topo.pool_of(topo.peer(host.name).name).arbitrator)
    none_imported = " && ".join(f"! {pool_imported(p)}" for p in pools)
    recovered = f'[ -e {IMPORTED_AT} ] && [ "$(cat {IMPORTED_AT})" -ge "$({BOOT_TIME})" ]'
    exports = [f"! {pool_imported(p)} || zpool export {quote(p)}" for p in pools]
    return Step(
        "export pools",
        commands=(
            "targetcli clearconfig confirm=True",
            f"! dmsetup info {arbitrator} >/dev/null 2>&1 || dmsetup remove --retry {arbitrator}",
            "! iscsiadm -m session >/dev/null 2>&1 || iscsiadm -m node --logoutall=all",
            "udevadm settle",
            *exports,
            f"mkdir -p {STATE_DIR}",
            f"date +%s > {EXPORTED_AT}",
        ),
        check=f"{{ {recovered}; }} || {{ {none_imported}; }}", stage=RecoveryStage.EXPORT)


def reboot_step() -> Step:
    """The paper's "calmly reboot once more"; done when the host booted after the export."""
    booted_since = f'[ ! -e {EXPORTED_AT} ] || [ "$({BOOT_TIME})" -gt "$(cat {EXPORTED_AT})" ]'
    return Step("reboot", commands=("systemctl --no-block reboot",), check=booted_since, reboot=True,
                stage=RecoveryStage.REBOOT)


def scrub_step(pool: str, stage: int) -> Step:
    """Each controller's own view of each pool is checked; a finished scrub proves nothing about the
    present, so the check only avoids starting a second scrub while one runs."""
    running = f"zpool status {quote(pool)} | grep -q 'scrub in progress'"
    return Step(f"scrub {pool}", commands=(f"zpool scrub {quote(pool)}", f"zpool wait -t scrub {quote(pool)}"),
                check=running, verify=f"! {running}", stage=stage)


def clear_step(pool: str) -> Step:
    healthy = f"zpool status -x {quote(pool)} | grep -q 'is healthy'"
    return Step(f"clear {pool}", commands=(f"zpool clear {quote(pool)}",), check=healthy,
                stage=RecoveryStage.CLEAR)
