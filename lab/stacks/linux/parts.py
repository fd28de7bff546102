"""The Linux stack's names and settings: which file, device, port and tunable each plan step uses.

Holds constants and pure name functions (a disk's by-id link, a LUN's by-path link, a volume's WWN). Knows
nothing of steps or plans: every other module of the package builds on these names.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from lab.topology import Pool, Topology

SCRIPTS = Path(__file__).resolve().parent / "scripts"
HELPER_DIR = "/usr/local/sbin"
HELPERS = ("beast-wait-block", "beast-dm-multipath", "beast-dm-multipath-ok", "beast-lio-target-ok",
           "beast-iscsi-ok")
TAKEOVER_HELPERS = ("beast-dm-arbitrator", "beast-dm-arbitrator-ok")
"""Written only when pools are imported by their owner only (OWNER_ONLY), so the paper mode's plans stay
as they were."""
OWNER_ONLY = ("takeover", "cluster")
"""Arbitrator modes where each pool is imported by its owner only and taken over by the survivor: by the
drill's oracle (takeover) or by the cluster (cluster)."""
MULTIHOST_MODES = ("takeover",)
"""Where pools are multihost=on. Cluster mode fences before it imports, so OpenZFS's activity check would
only add its wait to every takeover (10 s at MULTIHOST_TUNABLES; measured: the survivor's forced import
took 41 s with it under the drill's load, 20 s without it and no load); the drill's import watcher
still checks that no pool is ever on two controllers."""
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
OWN_VOLUME_LUN = 0
"""The LUN a controller serves its own pool's zvol as, in its private and its public target."""
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
    names = HELPERS + (TAKEOVER_HELPERS if arbitrator in OWNER_ONLY else ())
    return {f"{HELPER_DIR}/{name}": (SCRIPTS / name).read_text() for name in names}



def stripe_device(topo: Topology) -> str:
    return f"/dev/md/{topo.client.stripe}"
