"""The Linux stack's iSCSI and multipath steps: LIO targets, initiator logins, the controllers' arbitrator
maps and the client's multipath maps (multipathd's: ``client_multipath``), stripe, filesystem and mount.

Knows no pool creation or import and no plan order: ``provision`` and ``recovery`` put these steps in order.
"""

from __future__ import annotations

from lab.plan import Step
from lab.stacks.checks import wait_until
from lab.stacks.linux.client_multipath import client_multipath_steps
from lab.stacks.linux.parts import (
    ARBITRATOR_QUEUE_MODE,
    DROP_UNREADABLE_LIO_BACKUPS,
    FILESYSTEM,
    ISCSI_FAST_FAIL,
    ISCSI_PORT,
    OWN_VOLUME_LUN,
    backstore_name,
    initiator_name,
    lun_path,
    portal,
    stripe_device,
    volume_wwn,
    zvol_device,
)
from lab.stacks.shell import quote, words
from lab.topology import Host, Topology


def lio_target_step(name: str, iqn: str, address: str, initiator: str,
                    luns: list[tuple[str, str, str]], stage: int) -> Step:
    """One LIO target from scratch (a half-made one is deleted first); luns: (backstore, device, wwn)."""
    tpg = f"/iscsi/{iqn}/tpg1"
    configfs = f"/sys/kernel/config/target/iscsi/{iqn}"
    commands = [f"[ ! -d {quote(configfs)} ] || targetcli /iscsi delete {quote(iqn)}"]
    for backstore, device, wwn in luns:
        commands += [
            f"beast-wait-block {quote(device)}",
            f"ls -d /sys/kernel/config/target/core/iblock_*/{quote(backstore)} >/dev/null 2>&1 || "
            f"targetcli /backstores/block create {words(f'name={backstore}', f'dev={device}', f'wwn={wwn}')}",
        ]
    commands += [
        f"targetcli /iscsi create {quote(iqn)}",
        f"[ ! -d {quote(f'{configfs}/tpgt_1/np/0.0.0.0:{ISCSI_PORT}')} ] || "
        f"targetcli {quote(f'{tpg}/portals')} delete 0.0.0.0 {ISCSI_PORT}",
        f"targetcli {quote(f'{tpg}/portals')} create {quote(address)} {ISCSI_PORT}",
        *(f"targetcli {quote(f'{tpg}/luns')} create {quote(f'/backstores/block/{backstore}')}"
          for backstore, _, _ in luns),
        f"targetcli {quote(f'{tpg}/acls')} create {quote(initiator)}",
        DROP_UNREADABLE_LIO_BACKUPS,
        "targetcli saveconfig",
        "sync",
    ]
    done = f"beast-lio-target-ok {words(iqn, address, initiator, *(b for b, _, _ in luns))}"
    return Step(name, commands=tuple(commands), check=done, verify=done, stage=stage)


def private_target_step(topo: Topology, host: Host, stage: int) -> Step:
    """The arbitrator's target: this controller's zvol, for the peer only, on the private network."""
    pool = topo.pool_of(host.name)
    return lio_target_step(
        "private target", topo.iscsi.private_target, host.address("private"),
        initiator_name(topo.peer(host.name).name),
        [(backstore_name(pool), zvol_device(pool), volume_wwn(pool))], stage)


def public_target_step(topo: Topology, host: Host, stage: int) -> Step:
    """lun 0: this controller's zvol; lun 1: the arbitrator map of the peer's volume."""
    pool = topo.pool_of(host.name)
    peer_pool = topo.pool_of(topo.peer(host.name).name)
    return lio_target_step(
        "public target", topo.iscsi.public_target, host.address("public"),
        initiator_name(topo.client.host),
        [(backstore_name(pool), zvol_device(pool), volume_wwn(pool)),
         (peer_pool.arbitrator, f"/dev/mapper/{peer_pool.arbitrator}", volume_wwn(peer_pool))], stage)


def login_step(address: str, iqn: str, luns: int, stage: int) -> Step:
    """Discovery, the fast-fail settings, then a fresh login (a listed but broken session is dropped)."""
    where = f"-T {quote(iqn)} -p {quote(portal(address))}"
    session_listed = f"iscsiadm -m session 2>/dev/null | grep -q {quote(f' {portal(address)},[0-9]* {iqn} ')}"
    done = f"beast-iscsi-ok {words(address, iqn, luns)}"
    return Step(
        f"login {iqn} {address}",
        commands=(
            f"iscsiadm -m discovery -t sendtargets -p {quote(portal(address))} >/dev/null",
            *(f"iscsiadm -m node {where} -o update -n {words(key)} -v {words(value)}"
              for key, value in ISCSI_FAST_FAIL.items()),
            f"if {session_listed}; then iscsiadm -m node {where} --logout; fi",
            f"iscsiadm -m node {where} --login",
            *(f"beast-wait-block {quote(lun_path(address, iqn, lun))}" for lun in range(luns)),
        ),
        check=done, verify=wait_until(done, 30), stage=stage)


def multipath_step(name: str, mode: str, active: str, passive: str, stage: int) -> Step:
    done = f"beast-dm-multipath-ok {words(name, active, passive)}"
    return Step(f"multipath {name}", commands=(f"beast-dm-multipath {words(name, mode, active, passive)}",),
                check=done, verify=done, stage=stage)


def arbitrator_steps(topo: Topology, host: Host, stage: int) -> list[Step]:
    """Log in to the peer's private target; its LUN is the active path of the peer volume's map, the
    cross-imported zvol of the same volume the passive one."""
    peer = topo.peer(host.name)
    peer_pool = topo.pool_of(peer.name)
    iqn, address = topo.iscsi.private_target, peer.address("private")
    return [
        login_step(address, iqn, 1, stage),
        multipath_step(peer_pool.arbitrator, ARBITRATOR_QUEUE_MODE, lun_path(address, iqn, OWN_VOLUME_LUN),
                            zvol_device(peer_pool), stage),
    ]


def takeover_arbitrator_steps(topo: Topology, host: Host, stage: int) -> list[Step]:
    """Takeover mode: log in to the peer's private target; its LUN is the only path of the peer volume's
    map until a takeover (this controller does not import the peer's pool).

    The map queues I/O when it has no usable path (queue_if_no_path). When the peer dies, its iSCSI
    path fails after replacement_timeout and the client's commands that reached this controller's
    lun 1 wait in the map: failing them would fail the client's last path to the volume (its path
    through the dead peer is gone too) and the client's stripe with it. The wait ends when
    ``takeover`` adds the local zvol, within the client's 30 s SCSI command timeout if the takeover
    follows the fencing promptly (the import's activity check: see MULTIHOST_TUNABLES)."""
    peer = topo.peer(host.name)
    peer_pool = topo.pool_of(peer.name)
    iqn, address = topo.iscsi.private_target, peer.address("private")
    return [
        login_step(address, iqn, 1, stage),
        arbitrator_map_step(peer_pool.arbitrator, [lun_path(address, iqn, OWN_VOLUME_LUN)], stage),
    ]


def arbitrator_map_step(name: str, paths: list[str], stage: int, step_name: str = "") -> Step:
    """Takeover mode's arbitrator map: one priority group per path, the last one in use."""
    done = f"beast-dm-arbitrator-ok {words(name, *paths)}"
    return Step(step_name or f"multipath {name}", commands=(f"beast-dm-arbitrator {words(name, *paths)}",),
                check=done, verify=done, stage=stage)


def client_steps(topo: Topology, stage: int) -> list[Step]:
    """multipathd, the logins to both public targets, the maps it makes of them, then the stripe on the maps.
    Recovery runs these again: each step ends in the same state from a fresh client or a failed-over one."""
    iqn = topo.iscsi.public_target
    before_logins, map_steps = client_multipath_steps(topo, stage)
    steps = [*before_logins, *(login_step(host.address("public"), iqn, 2, stage) for host in topo.controllers),
             *map_steps]
    members = [f"/dev/mapper/{multipath.name}" for multipath in topo.client.multipaths]
    stripe, mountpoint = quote(stripe_device(topo)), quote(topo.client.mountpoint)
    first, all_members = quote(members[0]), words(*members)
    write_test = quote(f"{topo.client.mountpoint}/.beast-write-test")
    assembled = f"mdadm --detail --test {stripe} >/dev/null 2>&1"
    has_fs = f"blkid -p -s TYPE -o value {stripe} | grep -qx {FILESYSTEM}"
    writable = f"mountpoint -q {mountpoint} && echo beast > {write_test} && rm {write_test}"
    steps += [
        Step(f"stripe {topo.client.stripe}",
             commands=(f"if mdadm --examine {first} >/dev/null 2>&1; "
                       f"then mdadm --assemble {stripe} {all_members}; "
                       f"else mdadm --create {stripe} --run --metadata=1.2 --level=0 "
                       f"--raid-devices={len(members)} {quote(f'--homehost={topo.client.host}')} "
                       f"{quote(f'--name={topo.client.stripe}')} {all_members}; fi",
                       "udevadm settle"),
             check=assembled, verify=assembled, stage=stage),
        Step(f"filesystem {topo.client.stripe}",
             commands=(f"mkfs.{FILESYSTEM} -q -L {quote(topo.client.stripe)} "
                       f"-E lazy_itable_init=0,lazy_journal_init=0 {stripe}",),
             check=has_fs, verify=has_fs, stage=stage),
        Step(f"mount {topo.client.mountpoint}",
             commands=(f"mkdir -p {mountpoint}", f"mount {stripe} {mountpoint}"),
             check=f"mountpoint -q {mountpoint}", verify=writable, stage=stage),
    ]
    return steps
