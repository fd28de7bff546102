"""The Linux stack's steps on each host's own disks and ZFS: the base steps every host gets (helper scripts,
initiator name, udev links, hostid), the pools with their volumes and caches, and imports.

Knows no iSCSI target, multipath map or plan order: ``provision`` and ``recovery`` put these steps in order.
"""

from __future__ import annotations

from lab.plan import Step
from lab.stacks.base import Stage
from lab.stacks.checks import pool_imported, pool_online, property_is, vdev_in, wait_until
from lab.stacks.linux.parts import (
    DISK_LINKS_RULE,
    DISK_LINKS_RULE_PATH,
    IMPORTED_AT,
    MDADM_CONF,
    MDADM_CONF_PATH,
    MULTIHOST_CONF,
    MULTIHOST_CONF_PATH,
    MULTIHOST_MODES,
    MULTIHOST_TUNABLES,
    STATE_DIR,
    disk_path,
    helper_files,
    initiator_name,
    zvol_device,
)
from lab.stacks.shell import quote, words
from lab.topology import Host, Pool, Topology


def base_steps(topo: Topology, host: Host) -> list[Step]:
    helpers = helper_files(topo.lab.arbitrator)
    steps = [
        Step("helper scripts", files=helpers, commands=(f"chmod 755 {' '.join(helpers)}",),
             check=" && ".join(f"[ -x {path} ]" for path in helpers)),
        Step("iscsi initiator name",
             files={"/etc/iscsi/initiatorname.iscsi": f"InitiatorName={initiator_name(host.name)}\n"},
             commands=("systemctl try-restart iscsid.service",),
             check="systemctl is-enabled --quiet iscsid.socket"),
        Step("multipath modules", commands=("modprobe -a dm_multipath dm_round_robin",),
             check="[ -d /sys/module/dm_multipath ] && [ -d /sys/module/dm_round_robin ]"),
    ]
    if host in topo.controllers:
        nonzero = '[ -s /etc/hostid ] && [ "$(hostid)" != 00000000 ]'
        links = " && ".join(f"[ -b {quote(disk_path(topo, d))} ]" for d in topo.disks)
        steps += [
            Step("hostid", check=nonzero,
                 commands=('echo "hostid is $(hostid): the image sets one per VM at boot" >&2; exit 1',)),
            Step("disk names", files={DISK_LINKS_RULE_PATH: DISK_LINKS_RULE},
                 commands=("udevadm control --reload",
                           "udevadm trigger --subsystem-match=block --action=change",
                           "udevadm settle"),
                 check=links, verify=wait_until(links, 30)),
            Step("no array assembly", files={MDADM_CONF_PATH: MDADM_CONF},
                 commands=("mdadm --stop --scan",), check="! grep -q '^md' /proc/mdstat"),
        ]
        if topo.lab.arbitrator in MULTIHOST_MODES:
            steps.append(multihost_tunables_step())
    return steps


def multihost_tunables_step() -> Step:
    """zfs module parameters for multihost pools, now and at every module load (see MULTIHOST_TUNABLES)."""
    parameters = "/sys/module/zfs/parameters"
    return Step(
        "multihost tunables", files={MULTIHOST_CONF_PATH: MULTIHOST_CONF},
        commands=("modprobe zfs",
                  *(f"echo {quote(value)} > {quote(f'{parameters}/{key}')}"
                    for key, value in MULTIHOST_TUNABLES.items())),
        check=" && ".join(f'[ "$(cat {quote(f"{parameters}/{key}")} 2>/dev/null)" = {quote(value)} ]'
                          for key, value in MULTIHOST_TUNABLES.items()))


def pool_steps(topo: Topology, host: Host) -> list[Step]:
    """The paper's pool, volume, write and read caches, on the pool's owner. In takeover mode the pool
    is created with multihost=on, so no other host can import it while this one writes to it."""
    pool = topo.pool_of(host.name)
    data = words(*(disk_path(topo, d) for d in pool.data))
    log, cache = topo.disks[pool.log].serial, topo.disks[pool.cache].serial
    stage = Stage.POOLS
    multihost = topo.lab.arbitrator in MULTIHOST_MODES
    options = "-o multihost=on " if multihost else ""
    steps = [
        Step(f"create {pool.name}", commands=(f"zpool create -f {options}-m none {quote(pool.name)} {data}",),
             check=pool_imported(pool.name), verify=pool_online(pool.name), stage=stage),
    ]
    if multihost:
        steps.append(Step(f"multihost=on {pool.name}", commands=(f"zpool set multihost=on {quote(pool.name)}",),
                          check=property_is(pool.name, "multihost", "on", "zpool"), stage=stage))
    steps += [
        Step(f"volume {pool.zvol_path}",
             commands=(f"zfs create -V {words(pool.zvol.size, pool.zvol_path)}",
                       f"beast-wait-block {quote(zvol_device(pool))}"),
             check=f"zfs list -H -o name {quote(pool.zvol_path)} >/dev/null 2>&1",
             verify=f"beast-wait-block {quote(zvol_device(pool))}", stage=stage),
        Step(f"log {pool.name}", commands=(f"zpool add -f {words(pool.name, 'log', disk_path(topo, pool.log))}",),
             check=vdev_in(pool.name, "logs", log), stage=stage),
        Step(f"cache {pool.name}",
             commands=(f"zpool add -f {words(pool.name, 'cache', disk_path(topo, pool.cache))}",),
             check=vdev_in(pool.name, "cache", cache), stage=stage),
    ]
    steps += [
        Step(f"{prop}={value} {pool.name}", commands=(f"zfs set {words(f'{prop}={value}', pool.name)}",),
             check=property_is(pool.name, prop, value), stage=stage)
        for prop, value in pool.properties.items()
    ]
    steps.append(failmode_step(pool, stage))
    return steps


def failmode_step(pool: Pool, stage: int) -> Step:
    return Step(f"failmode={pool.failmode} {pool.name}",
                commands=(f"zpool set {words(f'failmode={pool.failmode}', pool.name)}",),
                check=property_is(pool.name, "failmode", pool.failmode, "zpool"), stage=stage)


def cross_import_steps(topo: Topology, host: Host) -> list[Step]:
    """The paper's "import pools from opposite controllers", then failmode on the imported pool too
    (the own pool got it in the pools stage, so that the peer imports it already set)."""
    peer_pool = topo.pool_of(topo.peer(host.name).name)
    return [
        import_step(topo, peer_pool, Stage.CROSS_IMPORT, expect_refusal=True),
        failmode_step(peer_pool, Stage.CROSS_IMPORT),
    ]


def import_step(topo: Topology, pool: Pool, stage: int, expect_refusal: bool) -> Step:
    """``zpool import -N`` as the paper, kept when refused, then with -f.

    With ``expect_refusal`` (provisioning: the owner has the pool imported) a missing refusal fails the
    step: both controllers would then share a hostid and OpenZFS's ownership checks would mean nothing.
    """
    refusal = quote(f"{STATE_DIR}/import-refusal-{pool.name}.txt")
    disks = words(*(disk_path(topo, d) for d in pool.disks))
    name = quote(pool.name)
    imports = (f"if zpool import -N -d /dev/disk/by-id {name} > {refusal} 2>&1; "
               f"then echo 'imported without -f' >> {refusal}; "
               f"else cat {refusal}; zpool import -f -N -d /dev/disk/by-id {name}; fi")
    verify = pool_online(pool.name)
    if expect_refusal:
        verify += f" && grep -q 'import -f' {refusal}"
    return Step(f"import {pool.name}",
                commands=(f"blockdev --rereadpt {disks}", "udevadm settle", f"mkdir -p {STATE_DIR}",
                          imports, f"date +%s > {IMPORTED_AT}"),
                check=pool_imported(pool.name), verify=verify, stage=stage)


def partitions_known(topo: Topology, pool: Pool) -> str:
    return " && ".join(f"[ -b {quote(f'{disk_path(topo, d)}-part1')} ]" for d in pool.disks)


def reread_partitions_commands(topo: Topology, pool: Pool) -> tuple[str, ...]:
    """The pool's disks' partition tables read again when their -part1 links are missing (the owner
    partitioned them after this host read them), then wait for the links. Not ``udevadm settle``: while
    an arbitrator map queues I/O, udev's probe of that map blocks and settle waits out its timeout."""
    disks = words(*(disk_path(topo, d) for d in pool.disks))
    known = partitions_known(topo, pool)
    return f"{known} || blockdev --rereadpt {disks}", wait_until(known, 30)


def import_devices(topo: Topology, pool: Pool) -> str:
    """``-d`` for each of the pool's partitions: never ``-d /dev/disk/by-id``, whose scan would also
    read the arbitrator map, and a read of a map queueing I/O never returns (measured: the import hung)."""
    return " ".join(f"-d {quote(f'{disk_path(topo, d)}-part1')}" for d in pool.disks)


def peer_partitions_step(topo: Topology, host: Host, stage: int) -> Step:
    """Takeover mode, at provisioning: read the peer pool's partition tables now, so a takeover does not
    wait for udev (11 s measured under TCG)."""
    peer_pool = topo.pool_of(topo.peer(host.name).name)
    known = partitions_known(topo, peer_pool)
    return Step(f"partitions of {peer_pool.name}", commands=reread_partitions_commands(topo, peer_pool),
                check=known, verify=known, stage=stage)
