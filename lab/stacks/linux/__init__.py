"""The paper's BeaST from Linux parts on Debian bookworm: OpenZFS, LIO (targetcli), open-iscsi,
device-mapper multipath tables built with dmsetup, and an mdadm RAID 0 stripe.

Same stages as the FreeBSD stack (the paper's "now on both controllers" barriers). What stands in for what:

==========================================  ==============================================================
FreeBSD (the paper)                         Linux (here)
==========================================  ==============================================================
ada1..ada4, da0..da3                        /dev/disk/by-id/beast-<disk>: a udev rule the plan writes makes
                                            the link from ID_SERIAL_SHORT, so no bus or model string is
                                            hard-coded and sdX names never appear
zpool import -N <peer pool>                 the same, refused by OpenZFS ("previously in use from another
                                            system"): the refusal is kept in /var/lib/beast, then -f, after
                                            ``blockdev --rereadpt`` (the peer partitioned the disks after
                                            this host read their tables) and with ``-d /dev/disk/by-id``
ctld + /etc/ctl.conf                        LIO via targetcli, portal on one address only (the default
                                            0.0.0.0 portal deleted), an ACL for the one initiator allowed,
                                            ``saveconfig``
iscsictl -A                                 iscsiadm discovery + login, node.startup=manual
kern.iscsi.fail_on_disconnection=1          per-node node.session.timeo.replacement_timeout=5 and
                                            noop-out interval/timeout 2/2 (see ``ISCSI_FAST_FAIL``)
gmultipath create NAME active passive       dmsetup table: two path groups of one path each, no
                                            queue_if_no_path; bio mode on the controllers (a zvol is
                                            bio-based), request mode on the client (iSCSI disks only)
gstripe create + newfs + mount              mdadm --create --level=0 + mkfs.ext4 + mount
==========================================  ==============================================================

Choices made here:

- multipath-tools cannot group an iSCSI disk with a zvol (a zd device has no WWID), so both the
  arbitrator and the client build their maps with dmsetup from /dev/disk/by-path names. The client
  therefore does not rely on WWIDs; still, each pool's volume gets one LIO unit serial (``volume_wwn``)
  on both controllers, so "ctrl-a lun 0" and "ctrl-b lun 1" also look like one volume to SCSI tools.
- Small shell helpers (``scripts/``) are files of the plan, written to /usr/local/sbin in the base stage:
  waiting for udev links, building and checking a multipath map, reading LIO and iSCSI state. Checks read
  configfs rather than ``targetcli ls`` because every targetcli start costs 1-3 s under TCG.
- The owner sets failmode=continue on its own pool before the cross import, so the peer imports the
  property with the pool and its own ``zpool set`` is skipped: the peer never writes to the pool for it.
- Recovery is one plan, like the FreeBSD stack's: a ``reboot`` step (Step.reboot) whose
  command drops the connection; the executor waits for the step's check ("booted after the export").
  Before the export the failed controller lets go of its zvols: LIO configuration cleared, its arbitrator
  map removed and its sessions logged out (an open zvol makes ``zpool export`` fail with "pool is busy").

Measured on the qemu lab (TCG, 2 host cores): provisioning ~4 min (targetcli steps 30-47 s each, pool
create ~20 s, cross import 14-18 s), a second apply skips every step in ~14 s; recovery ~1 min. Gotchas:

- mdadm's udev rule assembles any md superblock it sees: once the client's stripe exists, a controller
  importing the peer pool got an inactive md127 on the peer's zvol, and the arbitrator map then failed
  with EBUSY. Controllers get ``AUTO -all`` in mdadm.conf.
- The kernel adds ``retain_attached_hw_handler`` to a map over SCSI paths, so checks compare the table's
  devices (maj:min), not its text.
- After a power-off, zfs-import-cache did not import the pools at boot (last written by the peer's
  hostid), so the export step had nothing to do and the reboot step's check skipped it; LIO's saved
  configuration restored nothing at boot (no zvols yet), so recovery rebuilds the targets.

Takeover mode (``[lab] arbitrator = "takeover"``), the issue-7 alternative to the paper's cross import:

- pools created with ``-o multihost=on`` (works with the hostid each VM gets at boot) and imported by their
  owner only; each arbitrator map starts as the peer's iSCSI disk alone, bio mode, ``queue_if_no_path``;
- ``takeover(topo, failed)``, after the caller fenced ``failed``: ``zpool import -f -N`` on the survivor,
  the zvol, then the map reloaded with the zvol as a second priority group and switched to it;
- ``recovery(topo, failed)``: the survivor's map back to the iSCSI path, the pool exported, the owner
  imports it without -f, targets, arbitrators and client paths rebuilt, each controller scrubs its own.

Measured on the qemu lab (TCG, 2 host cores shared with another lab): ctrl-a powered off 3 s into a
64 MiB copy, status STOPPED at once; takeover 27.7 s (forced import 20.0 s, the activity check ~10 s of it
at zfs_multihost_interval=500; map reload 7.4 s). The client's probe saw one write/read take 26.7 s and no
failure; the copy finished, and after dropping caches and remounting both the file written before the kill
and the copy had their md5. What the first tries found:

- ``zpool import -d /dev/disk/by-id`` scans the arbitrator map too, and a read of a map queueing I/O never
  returns: the import hung 600 s. The pool's partitions are named with one ``-d`` each.
- A flushing ``dmsetup suspend`` of a bio-based multipath map fails the I/O it queued (a read got EIO);
  ``suspend --noflush`` pushes it back and it completes on the new table (a read waited 37 s, then succeeded).
- While a map queues I/O, udev's probe of the map blocks, so ``udevadm settle`` (and ``beast-wait-block``)
  waits out its timeout: no settle on the takeover path.
- The dead peer's iSCSI disk cannot be opened (ENXIO) once its session timed out; device-mapper still takes
  it in the new table, so the map's size comes from the other path.
- With the takeover failing, the client's write through the survivor waited ~90 s, then its stripe failed.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from lab.parsers.iscsi import parse_iscsiadm_session_p3
from lab.parsers.multipath import parse_dmsetup_status
from lab.plan import Plan, Step
from lab.stacks.base import RecoveryStage, Stack, Stage, TakebackStage
from lab.stacks.checks import pool_imported, pool_online, property_is, vdev_in, wait_until
from lab.stacks.shell import quote, words
from lab.topology import Host, Pool, Topology

SCRIPTS = Path(__file__).resolve().parent / "scripts"
HELPER_DIR = "/usr/local/sbin"
HELPERS = ("beast-wait-block", "beast-dm-multipath", "beast-dm-multipath-ok", "beast-lio-target-ok",
           "beast-iscsi-ok")
TAKEOVER_HELPERS = ("beast-dm-arbitrator", "beast-dm-arbitrator-ok")
"""Written only in arbitrator = "takeover" mode, so the paper mode's plans stay as they were."""
STATE_DIR = "/var/lib/beast"
EXPORTED_AT = f"{STATE_DIR}/recovery-exported"
"""When recovery exported the pools (epoch seconds): the reboot is done once the host booted later."""
IMPORTED_AT = f"{STATE_DIR}/recovery-imported"
"""When recovery imported the pools again: a later export in the same boot would undo the recovery."""
BOOT_TIME = "awk '$1 == \"btime\" {print $2}' /proc/stat"

DISK_LINKS_RULE_PATH = "/etc/udev/rules.d/61-beast-disks.rules"
DISK_LINKS_RULE = """\
# BeaST Lab: /dev/disk/by-id/beast-<disk> for the shared disks, whatever bus or model presents them.
ACTION!="remove", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ENV{ID_SERIAL_SHORT}=="beast-*", \
SYMLINK+="disk/by-id/$env{ID_SERIAL_SHORT}"
ACTION!="remove", SUBSYSTEM=="block", ENV{DEVTYPE}=="partition", ENV{ID_SERIAL_SHORT}=="beast-*", \
SYMLINK+="disk/by-id/$env{ID_SERIAL_SHORT}-part%n"
"""
"""After 60-persistent-storage.rules, which sets ID_SERIAL_SHORT (and gives it to partitions). ZFS needs
the partition links too: it labels a whole disk and then waits for ``<disk>-part1`` to appear."""

MDADM_CONF_PATH = "/etc/mdadm/mdadm.conf"
MDADM_CONF = """\
# BeaST Lab: a controller assembles no arrays. The client's stripe members are this host's zvols and
# iSCSI disks: udev's incremental assembly would claim them and the arbitrator map could not open them.
AUTO -all
"""

INITIATOR_PREFIX = "iqn.2016-01.local.sss"
ISCSI_PORT = 3260
ISCSI_FAST_FAIL = {
    "node.startup": "manual",
    "node.session.timeo.replacement_timeout": "5",
    "node.conn[0].timeo.noop_out_interval": "2",
    "node.conn[0].timeo.noop_out_timeout": "2",
}
"""The analogue of kern.iscsi.fail_on_disconnection=1. FreeBSD drops the disk at once when the connection
goes; open-iscsi instead keeps the disk and queues I/O while it reconnects, for replacement_timeout
(default 120 s) before failing it up to dm-multipath. 5 s makes that failover prompt; noop-outs every 2 s
that time out after 2 s notice a dead peer that sends no RST (a powered-off VM) within ~4 s instead of
~10 s. node.startup=manual: after a reboot nothing logs in by itself, recovery logs in explicitly."""

MULTIHOST_CONF_PATH = "/etc/modprobe.d/beast-multihost.conf"
MULTIHOST_TUNABLES = {"zfs_multihost_interval": "500"}
"""Takeover mode: how often a multihost pool's owner writes its MMP uberblocks (ms; default 1000).

The owner records this interval and zfs_multihost_fail_intervals (default 10) in every uberblock; a host
importing the pool watches the disks for activity for fail_intervals x interval x 2 (OpenZFS's
MMP_IMPORT_SAFETY_FACTOR of 200 %), 20 s by default and 10 s at 500 ms. Everything the client writes to
the failed controller's volume waits in the survivor's arbitrator map for that long plus the import, and
the client's SCSI commands time out after 30 s. The price: an owner whose MMP writes do not land for
fail_intervals x interval (5 s here) suspends its pool, so a disk stall that long on a busy host stops it.
Set on both controllers, so the value in the uberblock is the same whichever host owns the pool."""
MULTIHOST_CONF = (
    "# BeaST Lab, arbitrator = \"takeover\": see lab/stacks/linux MULTIHOST_TUNABLES\n"
    f"options zfs {' '.join(f'{k}={v}' for k, v in MULTIHOST_TUNABLES.items())}\n"
)

ARBITRATOR_QUEUE_MODE = "bio"
CLIENT_QUEUE_MODE = "request"
FILESYSTEM = "ext4"
DROP_UNREADABLE_LIO_BACKUPS = (
    'for f in /etc/rtslib-fb-target/backup/saveconfig-*json.gz; do [ ! -e "$f" ] || gzip -t "$f" 2>/dev/null || '
    'rm -f "$f"; done'
)
"""A controller powered off right after a saveconfig can keep a truncated backup; targetcli's saveconfig
then fails on it for good ("cannot access local variable 'fdata_bkp'", found by CI). Saves are synced too."""
VOLUME_WWN_NAMESPACE = uuid.UUID("6d0b5a3e-2f4c-4b8e-9a35-6265615354ab")


def disk_path(topo: Topology, disk: str) -> str:
    return f"/dev/disk/by-id/{topo.disks[disk].serial}"


def zvol_device(pool: Pool) -> str:
    return f"/dev/zvol/{pool.zvol_path}"


def initiator_name(host: str) -> str:
    return f"{INITIATOR_PREFIX}:{host}"


def portal(address: str) -> str:
    return f"{address}:{ISCSI_PORT}"


def lun_path(address: str, iqn: str, lun: int) -> str:
    """udev's stable name of one LUN of one session (the sdX behind it changes on every login)."""
    return f"/dev/disk/by-path/ip-{portal(address)}-iscsi-{iqn}-lun-{lun}"


def backstore_name(pool: Pool) -> str:
    return f"{pool.name}-{pool.zvol.name}"


def volume_wwn(pool: Pool) -> str:
    """One LIO unit serial per pool volume, the same on the owner's lun 0 and the peer's lun 1."""
    return str(uuid.uuid5(VOLUME_WWN_NAMESPACE, pool.zvol_path))


def helper_files(arbitrator: str = "paper") -> dict[str, str]:
    names = HELPERS + (TAKEOVER_HELPERS if arbitrator == "takeover" else ())
    return {f"{HELPER_DIR}/{name}": (SCRIPTS / name).read_text() for name in names}


class LinuxStack(Stack):
    """The paper's architecture with Linux parts; see the module docstring for the correspondences."""

    name = "linux"

    arbitrator_modes = ("paper", "takeover")

    def provision(self, topo: Topology) -> Plan:
        """The paper's BeaST. In takeover mode (``[lab] arbitrator``) there is no cross import: each pool is
        imported by its owner only, with multihost=on, and each arbitrator map starts with the peer's iSCSI
        disk alone (see ``takeover_arbitrator_steps``)."""
        self.check_arbitrator(topo)
        takeover = topo.lab.arbitrator == "takeover"
        plan: Plan = {}
        for host in topo.controllers:
            plan[host.name] = [
                *self.base_steps(topo, host),
                *self.pool_steps(topo, host),
                *([self.peer_partitions_step(topo, host, Stage.CROSS_IMPORT)] if takeover
                  else self.cross_import_steps(topo, host)),
                self.private_target_step(topo, host, Stage.PRIVATE_TARGET),
                *(self.takeover_arbitrator_steps if takeover else self.arbitrator_steps)(
                    topo, host, Stage.ARBITRATOR),
                self.public_target_step(topo, host, Stage.PUBLIC_TARGET),
            ]
        plan[topo.client.host] = [
            *self.base_steps(topo, topo.client_host),
            *self.client_steps(topo, Stage.CLIENT),
        ]
        return plan

    def recovery(self, topo: Topology, failed: str) -> Plan:
        """The paper's prose after the failed controller was booted again: export, reboot, import, scrub on
        both, clear, then the arbitrator, the public target and the client's paths once more. The base
        steps come again after the reboot (skipped unless the host came back with a fresh root disk).
        The steps that rebuild are provisioning's own: their checks skip what survived (the survivor's
        target, the client's stripe) and redo what did not (sessions, failed paths, the primary path)."""
        self.check_arbitrator(topo)
        survivor = self.survivor_of(topo, failed, "recover")
        if topo.lab.arbitrator == "takeover":
            return self.takeover_recovery(topo, failed)
        names = [h.name for h in topo.controllers]
        host = topo.hosts[failed]
        pools = [topo.pool_of(name) for name in names]
        plan: Plan = {failed: [], survivor.name: [], topo.client.host: []}
        plan[failed] += [
            self.release_step(topo, host),
            self.reboot_step(),
            *[replace(step, stage=RecoveryStage.IMPORT) for step in self.base_steps(topo, host)],
            *[self.import_step(topo, pool, RecoveryStage.IMPORT, expect_refusal=False) for pool in pools],
            *[self.scrub_step(pool.name, RecoveryStage.SCRUB_ON_FAILED) for pool in pools],
        ]
        plan[survivor.name] += [self.scrub_step(pool.name, RecoveryStage.SCRUB_ON_SURVIVOR) for pool in pools]
        for name in (failed, survivor.name):
            plan[name] += [self.clear_step(pool.name) for pool in pools]
        plan[failed] += [
            self.private_target_step(topo, host, RecoveryStage.PRIVATE_TARGET),
            *self.arbitrator_steps(topo, host, RecoveryStage.ARBITRATOR),
            self.public_target_step(topo, host, RecoveryStage.PUBLIC_TARGET),
        ]
        plan[survivor.name] += self.arbitrator_steps(topo, survivor, RecoveryStage.ARBITRATOR)
        plan[topo.client.host] += self.client_steps(topo, RecoveryStage.CLIENT)
        return plan

    def takeover(self, topo: Topology, failed: str) -> Plan:
        """Takeover mode, on the survivor, once ``failed`` is confirmed powered off (the caller fences it;
        nothing here checks): import the failed controller's pool with -f, wait for its zvol, and reload
        the arbitrator map with that zvol as a second priority group, in use from then on. The map stays
        open under LIO; I/O it queued meanwhile goes to the zvol.

        -f only overrides "last imported on another host": with multihost=on OpenZFS first watches the
        disks for the owner's MMP writes (fail_intervals x interval x 2, see MULTIHOST_TUNABLES) and
        refuses the import while the owner is alive, so a takeover from a live controller fails here
        instead of corrupting the pool. Paper mode: an empty plan."""
        self.check_arbitrator(topo)
        survivor = self.survivor_of(topo, failed, "take over from")
        if topo.lab.arbitrator == "paper":
            return {}
        pool = topo.pool_of(failed)
        iscsi = lun_path(topo.hosts[failed].address("private"), topo.iscsi.private_target, 0)
        zvol = zvol_device(pool)
        stage = 0
        return {survivor.name: [
            Step(f"import {pool.name} -f",
                 commands=(*self.reread_partitions_commands(topo, pool),
                           f"zpool import -f -N {self.import_devices(topo, pool)} {quote(pool.name)}"),
                 check=pool_imported(pool.name),
                 verify=f"{pool_online(pool.name)} && {property_is(pool.name, 'multihost', 'on', 'zpool')}",
                 stage=stage),
            Step(f"volume {pool.zvol_path}", commands=(wait_until(f"[ -b {quote(zvol)} ]"),),
                 check=f"[ -b {quote(zvol)} ]", verify=f"[ -b {quote(zvol)} ]", stage=stage),
            self.arbitrator_map_step(pool.arbitrator, [iscsi, zvol], stage,
                                     f"multipath {pool.arbitrator} + {zvol}"),
        ]}

    def partitions_known(self, topo: Topology, pool: Pool) -> str:
        return " && ".join(f"[ -b {quote(f'{disk_path(topo, d)}-part1')} ]" for d in pool.disks)

    def reread_partitions_commands(self, topo: Topology, pool: Pool) -> tuple[str, ...]:
        """The pool's disks' partition tables read again when their -part1 links are missing (the owner
        partitioned them after this host read them), then wait for the links. Not ``udevadm settle``: while
        an arbitrator map queues I/O, udev's probe of that map blocks and settle waits out its timeout."""
        disks = words(*(disk_path(topo, d) for d in pool.disks))
        known = self.partitions_known(topo, pool)
        return f"{known} || blockdev --rereadpt {disks}", wait_until(known, 30)

    def force_import_command(self, topo: Topology, pool: str) -> str:
        return f"zpool import -f -N {self.import_devices(topo, topo.pools[pool])} {quote(pool)}"

    def import_devices(self, topo: Topology, pool: Pool) -> str:
        """``-d`` for each of the pool's partitions: never ``-d /dev/disk/by-id``, whose scan would also
        read the arbitrator map, and a read of a map queueing I/O never returns (measured: the import hung)."""
        return " ".join(f"-d {quote(f'{disk_path(topo, d)}-part1')}" for d in pool.disks)

    def peer_partitions_step(self, topo: Topology, host: Host, stage: int) -> Step:
        """Takeover mode, at provisioning: read the peer pool's partition tables now, so a takeover does not
        wait for udev (11 s measured under TCG)."""
        peer_pool = topo.pool_of(topo.peer(host.name).name)
        known = self.partitions_known(topo, peer_pool)
        return Step(f"partitions of {peer_pool.name}", commands=self.reread_partitions_commands(topo, peer_pool),
                    check=known, verify=known, stage=stage)

    def takeover_recovery(self, topo: Topology, failed: str) -> Plan:
        """Takeover mode: the restarted controller gets its pool back (stages: TakebackStage).

        The survivor first drops its zvol path from the arbitrator map (back to the iSCSI path alone, which
        queues I/O: the client's commands for this volume wait from here until the owner serves it again)
        and exports the pool; only then does the owner import it, without -f (an import that needs -f here
        means the survivor still has it, and fails the step). Then the owner's private target, both
        arbitrators (the survivor's session reconnects, its map's path is reinstated), the owner's public
        target, the client's paths; each controller scrubs and clears its own pool last."""
        host = topo.hosts[failed]
        survivor = topo.peer(failed)
        pool, survivor_pool = topo.pool_of(failed), topo.pool_of(survivor.name)
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
            commands=(*self.reread_partitions_commands(topo, pool),
                      f"zpool import -N {self.import_devices(topo, pool)} {quote(pool.name)}"),
            check=pool_imported(pool.name),
            verify=f"{pool_online(pool.name)} && {property_is(pool.name, 'multihost', 'on', 'zpool')}",
            stage=stage.IMPORT)
        plan: Plan = {failed: [], survivor.name: [release], topo.client.host: []}
        plan[failed] += [
            *[replace(step, stage=stage.IMPORT) for step in self.base_steps(topo, host)],
            own_import,
            self.private_target_step(topo, host, stage.PRIVATE_TARGET),
            *self.takeover_arbitrator_steps(topo, host, stage.ARBITRATOR),
            self.public_target_step(topo, host, stage.PUBLIC_TARGET),
        ]
        plan[survivor.name] += self.takeover_arbitrator_steps(topo, survivor, stage.ARBITRATOR)
        plan[topo.client.host] += self.client_steps(topo, stage.CLIENT)
        for name, own in ((failed, pool), (survivor.name, survivor_pool)):
            plan[name] += [self.scrub_step(own.name, stage.SCRUB),
                           replace(self.clear_step(own.name), stage=stage.CLEAR)]
        return plan

    # Queries a scenario runs on a host.

    def multipath_status_command(self, name: str | None = None) -> str:
        """``dmsetup status`` of one map, or of every multipath map ("NAME: ..." lines)."""
        return f"dmsetup status {quote(name)}" if name else "dmsetup status --target multipath"

    def multipath_table_command(self, name: str | None = None) -> str:
        return f"dmsetup table {quote(name)}" if name else "dmsetup table --target multipath"

    def sessions_command(self) -> str:
        return "iscsiadm -m session"


    def md5_command(self, path: str) -> str:
        return f"md5sum {quote(path)} | cut -d' ' -f1"

    def client_paths_command(self, topo: Topology) -> str:
        """Each client map's status, then the kernel names of the devices it lists (maj:min name)."""
        names = words(*(m.name for m in topo.client.multipaths))
        return (f"for map in {names}; do printf '%s: ' \"$map\"; dmsetup status \"$map\"; done; "
                "echo '--'; lsblk -rndo MAJ:MIN,NAME")

    def parse_client_paths(self, topo: Topology, text: str) -> dict[str, dict[str, str]]:
        """Paths by kernel name (sdb): "active" in the group in use, "standby" in the other, or "failed"."""
        status_text, _, devices_text = text.partition("\n--\n")
        names = dict(line.split(maxsplit=1) for line in devices_text.splitlines() if len(line.split()) == 2)
        paths: dict[str, dict[str, str]] = {}
        for status in parse_dmsetup_status(status_text):
            states = {}
            for number, group in enumerate(status.groups, 1):
                for path in group.paths:
                    if not path.active:
                        state = "failed"
                    else:
                        state = "active" if number == status.next_group else "standby"
                    states[names.get(path.dev, path.dev)] = state
            paths[status.name or ""] = states
        return paths

    def client_sessions_command(self) -> str:
        return "iscsiadm -m session -P 3"

    def parse_client_path_portals(self, text: str) -> dict[str, str]:
        return {disk.device: (session.current_portal or session.persistent_portal or "").split(":")[0]
                for session in parse_iscsiadm_session_p3(text) for disk in session.disks}

    def remount_commands(self, topo: Topology) -> list[str]:
        mountpoint = quote(topo.client.mountpoint)
        return [f"! mountpoint -q {mountpoint} || umount {mountpoint}",
                f"mount {quote(self.stripe_device(topo))} {mountpoint}"]

    def corrupt_disk_command(self, topo: Topology, disk: str) -> str:
        """Random data over the part of the disk ZFS allocates first (after its 4 MiB of labels and boot area)."""
        return (f"dd if=/dev/urandom {quote(f'of={disk_path(topo, disk)}')} bs=1M seek=4 count=96 "
                f"oflag=direct conv=notrunc status=none")

    def fail_client_path_command(self, topo: Topology, multipath: str) -> str:
        last = f"$(dmsetup table {quote(multipath)} | tr ' ' '\\n' | grep -E '^[0-9]+:[0-9]+$' | tail -n 1)"
        return f"dmsetup message {quote(multipath)} 0 fail_path {last}"

    def probe_command(self, topo: Topology, log_path: str, interval_s: float) -> str:
        probe = f"{topo.client.mountpoint}/.beast-probe"
        write_read = (f"dd if=/dev/urandom {quote(f'of={probe}')} bs=4096 count=1 oflag=direct,sync 2>/dev/null && "
                      f"dd {quote(f'if={probe}')} of=/dev/null bs=4096 iflag=direct 2>/dev/null")
        return (f"while :; do s=$(date +%s.%N); if {write_read}; then r=ok; else r=fail; fi; "
                f'echo "$s $(date +%s.%N) $r" >> {quote(log_path)}; sleep {quote(f"{interval_s:g}")}; done')

    # Provisioning.

    def base_steps(self, topo: Topology, host: Host) -> list[Step]:
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
            if topo.lab.arbitrator == "takeover":
                steps.append(self.multihost_tunables_step())
        return steps

    def multihost_tunables_step(self) -> Step:
        """zfs module parameters for multihost pools, now and at every module load (see MULTIHOST_TUNABLES)."""
        parameters = "/sys/module/zfs/parameters"
        return Step(
            "multihost tunables", files={MULTIHOST_CONF_PATH: MULTIHOST_CONF},
            commands=("modprobe zfs",
                      *(f"echo {quote(value)} > {quote(f'{parameters}/{key}')}"
                        for key, value in MULTIHOST_TUNABLES.items())),
            check=" && ".join(f'[ "$(cat {quote(f"{parameters}/{key}")} 2>/dev/null)" = {quote(value)} ]'
                              for key, value in MULTIHOST_TUNABLES.items()))

    def pool_steps(self, topo: Topology, host: Host) -> list[Step]:
        """The paper's pool, volume, write and read caches, on the pool's owner. In takeover mode the pool
        is created with multihost=on, so no other host can import it while this one writes to it."""
        pool = topo.pool_of(host.name)
        data = words(*(disk_path(topo, d) for d in pool.data))
        log, cache = topo.disks[pool.log].serial, topo.disks[pool.cache].serial
        stage = Stage.POOLS
        takeover = topo.lab.arbitrator == "takeover"
        options = "-o multihost=on " if takeover else ""
        steps = [
            Step(f"create {pool.name}", commands=(f"zpool create -f {options}-m none {quote(pool.name)} {data}",),
                 check=pool_imported(pool.name), verify=pool_online(pool.name), stage=stage),
        ]
        if takeover:
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
        steps.append(self.failmode_step(pool, stage))
        return steps

    def failmode_step(self, pool: Pool, stage: int) -> Step:
        return Step(f"failmode={pool.failmode} {pool.name}",
                    commands=(f"zpool set {words(f'failmode={pool.failmode}', pool.name)}",),
                    check=property_is(pool.name, "failmode", pool.failmode, "zpool"), stage=stage)

    def cross_import_steps(self, topo: Topology, host: Host) -> list[Step]:
        """The paper's "import pools from opposite controllers", then failmode on the imported pool too
        (the own pool got it in the pools stage, so that the peer imports it already set)."""
        peer_pool = topo.pool_of(topo.peer(host.name).name)
        return [
            self.import_step(topo, peer_pool, Stage.CROSS_IMPORT, expect_refusal=True),
            self.failmode_step(peer_pool, Stage.CROSS_IMPORT),
        ]

    def import_step(self, topo: Topology, pool: Pool, stage: int, expect_refusal: bool) -> Step:
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

    def lio_target_step(self, name: str, iqn: str, address: str, initiator: str,
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

    def private_target_step(self, topo: Topology, host: Host, stage: int) -> Step:
        """The arbitrator's target: this controller's zvol, for the peer only, on the private network."""
        pool = topo.pool_of(host.name)
        return self.lio_target_step(
            "private target", topo.iscsi.private_target, host.address("private"),
            initiator_name(topo.peer(host.name).name),
            [(backstore_name(pool), zvol_device(pool), volume_wwn(pool))], stage)

    def public_target_step(self, topo: Topology, host: Host, stage: int) -> Step:
        """lun 0: this controller's zvol; lun 1: the arbitrator map of the peer's volume."""
        pool = topo.pool_of(host.name)
        peer_pool = topo.pool_of(topo.peer(host.name).name)
        return self.lio_target_step(
            "public target", topo.iscsi.public_target, host.address("public"),
            initiator_name(topo.client.host),
            [(backstore_name(pool), zvol_device(pool), volume_wwn(pool)),
             (peer_pool.arbitrator, f"/dev/mapper/{peer_pool.arbitrator}", volume_wwn(peer_pool))], stage)

    def login_step(self, address: str, iqn: str, luns: int, stage: int) -> Step:
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

    def multipath_step(self, name: str, mode: str, active: str, passive: str, stage: int) -> Step:
        done = f"beast-dm-multipath-ok {words(name, active, passive)}"
        return Step(f"multipath {name}", commands=(f"beast-dm-multipath {words(name, mode, active, passive)}",),
                    check=done, verify=done, stage=stage)

    def arbitrator_steps(self, topo: Topology, host: Host, stage: int) -> list[Step]:
        """Log in to the peer's private target; its LUN is the active path of the peer volume's map, the
        cross-imported zvol of the same volume the passive one."""
        peer = topo.peer(host.name)
        peer_pool = topo.pool_of(peer.name)
        iqn, address = topo.iscsi.private_target, peer.address("private")
        return [
            self.login_step(address, iqn, 1, stage),
            self.multipath_step(peer_pool.arbitrator, ARBITRATOR_QUEUE_MODE, lun_path(address, iqn, 0),
                                zvol_device(peer_pool), stage),
        ]

    def takeover_arbitrator_steps(self, topo: Topology, host: Host, stage: int) -> list[Step]:
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
            self.login_step(address, iqn, 1, stage),
            self.arbitrator_map_step(peer_pool.arbitrator, [lun_path(address, iqn, 0)], stage),
        ]

    def arbitrator_map_step(self, name: str, paths: list[str], stage: int, step_name: str = "") -> Step:
        """Takeover mode's arbitrator map: one priority group per path, the last one in use."""
        done = f"beast-dm-arbitrator-ok {words(name, *paths)}"
        return Step(step_name or f"multipath {name}", commands=(f"beast-dm-arbitrator {words(name, *paths)}",),
                    check=done, verify=done, stage=stage)

    def stripe_device(self, topo: Topology) -> str:
        return f"/dev/md/{topo.client.stripe}"

    def client_steps(self, topo: Topology, stage: int) -> list[Step]:
        iqn = topo.iscsi.public_target
        steps = [self.login_step(host.address("public"), iqn, 2, stage) for host in topo.controllers]
        members = []
        for multipath in topo.client.multipaths:
            owner = topo.hosts[topo.pools[multipath.pool].owner]
            peer = topo.peer(owner.name)
            steps.append(self.multipath_step(multipath.name, CLIENT_QUEUE_MODE,
                                             lun_path(owner.address("public"), iqn, 0),
                                             lun_path(peer.address("public"), iqn, 1), stage))
            members.append(f"/dev/mapper/{multipath.name}")
        stripe, mountpoint = quote(self.stripe_device(topo)), quote(topo.client.mountpoint)
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

    # Recovery.

    def release_step(self, topo: Topology, host: Host) -> Step:
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

    def reboot_step(self) -> Step:
        """The paper's "calmly reboot once more"; done when the host booted after the export."""
        booted_since = f'[ ! -e {EXPORTED_AT} ] || [ "$({BOOT_TIME})" -gt "$(cat {EXPORTED_AT})" ]'
        return Step("reboot", commands=("systemctl --no-block reboot",), check=booted_since, reboot=True,
                    stage=RecoveryStage.REBOOT)

    def scrub_step(self, pool: str, stage: int) -> Step:
        """Each controller's own view of each pool is checked; a finished scrub proves nothing about the
        present, so the check only avoids starting a second scrub while one runs."""
        running = f"zpool status {quote(pool)} | grep -q 'scrub in progress'"
        return Step(f"scrub {pool}", commands=(f"zpool scrub {quote(pool)}", f"zpool wait -t scrub {quote(pool)}"),
                    check=running, verify=f"! {running}", stage=stage)

    def clear_step(self, pool: str) -> Step:
        healthy = f"zpool status -x {quote(pool)} | grep -q 'is healthy'"
        return Step(f"clear {pool}", commands=(f"zpool clear {quote(pool)}",), check=healthy,
                    stage=RecoveryStage.CLEAR)
