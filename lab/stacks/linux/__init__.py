"""The paper's BeaST from Linux parts on Debian bookworm: OpenZFS, LIO (targetcli), open-iscsi,
device-mapper multipath (the controllers' arbitrator maps built with dmsetup, the client's by multipathd),
and an mdadm RAID 0 stripe.

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
gmultipath create NAME active passive       controllers: a dmsetup table of two path groups of one path
                                            each, bio mode (a zvol is bio-based), no queue_if_no_path;
                                            client: multipathd, owner's path first (``client_multipath``)
gstripe create + newfs + mount              mdadm --create --level=0 + mkfs.ext4 + mount
==========================================  ==============================================================

Choices made here:

- multipath-tools cannot group an iSCSI disk with a zvol (a zd device has no WWID), so the arbitrator
  maps are built with dmsetup from /dev/disk/by-path names. Each pool's volume gets one LIO unit serial
  (``volume_wwn``) on both controllers, so "ctrl-a lun 0" and "ctrl-b lun 1" are one volume, one WWID,
  to the client's multipathd.
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

The package, by concern: ``parts`` (names and settings), ``pools`` (each host's disks and ZFS steps),
``targets`` (LIO, iSCSI logins, multipath maps, the client's stripe), ``provision`` (the provisioning
plan's order), ``recovery`` (recovery, takeover, takeback), ``queries`` (what the drill asks of hosts, as
facts), ``faults`` (what the drill injects). ``LinuxStack`` validates, delegates the plans and mixes in
the queries and faults.
"""

from __future__ import annotations

from lab.plan import Plan
from lab.stacks.base import RecoveryStage, Stack, Stage, TakebackStage
from lab.stacks.linux.cluster import CLUSTER_LOG_COMMAND, CLUSTER_VIEWS, cluster_recovery_plan, takeover_timeline
from lab.stacks.linux.faults import LinuxFaults
from lab.stacks.linux.parts import (
    HELPER_DIR,
    HELPERS,
    ISCSI_FAST_FAIL,
    MULTIHOST_TUNABLES,
    SCRIPTS,
    TAKEOVER_HELPERS,
    helper_files,
    lun_path,
)
from lab.stacks.linux.provision import provision_plan
from lab.stacks.linux.queries import LinuxQueries
from lab.stacks.linux.recovery import recovery_plan, takeover_plan
from lab.stacks.shell import quote
from lab.topology import Topology


class LinuxStack(LinuxQueries, LinuxFaults, Stack):
    """The paper's architecture with Linux parts; see the package docstring for the correspondences."""

    name = "linux"

    arbitrator_modes = ("paper", "takeover", "cluster")

    def provision(self, topo: Topology) -> Plan:
        """The paper's BeaST; in takeover mode each pool is imported by its owner only (``provision``)."""
        self.check_arbitrator(topo)
        return provision_plan(topo)

    def recovery(self, topo: Topology, failed: str) -> Plan:
        """The paper's recovery, or in takeover mode the takeback (``recovery``)."""
        self.check_arbitrator(topo)
        self.survivor_of(topo, failed, "recover")
        if topo.lab.arbitrator == "cluster":
            return cluster_recovery_plan(topo, failed)
        return recovery_plan(topo, failed)

    def takeover(self, topo: Topology, failed: str) -> Plan:
        """Takeover mode: the survivor imports the fenced controller's pool (``recovery.takeover_plan``).
        Paper mode: an empty plan (the standby path is there); cluster mode too (the cluster takes over)."""
        self.check_arbitrator(topo)
        self.survivor_of(topo, failed, "take over from")
        if topo.lab.arbitrator in ("paper", "cluster"):
            return {}
        return takeover_plan(topo, failed)

    def sync_file_command(self, path: str) -> str:
        return f"sync {quote(path)}"

    def cluster_views(self, topo: Topology) -> dict[str, str]:
        if topo.lab.arbitrator != "cluster":
            return {}
        return CLUSTER_VIEWS

    def cluster_log_command(self, topo: Topology) -> str | None:
        if topo.lab.arbitrator != "cluster":
            return None
        return CLUSTER_LOG_COMMAND

    def takeover_timeline(self, topo: Topology, log: str, struck: float, victim: str) -> dict[str, float]:
        return takeover_timeline(topo, log, struck, victim)


__all__ = ["HELPERS", "HELPER_DIR", "ISCSI_FAST_FAIL", "MULTIHOST_TUNABLES", "SCRIPTS", "TAKEOVER_HELPERS",
           "LinuxStack", "RecoveryStage", "Stage", "TakebackStage", "helper_files", "lun_path"]
