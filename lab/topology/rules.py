"""What a name, path or number in a topology may be. Every value that reaches a file path on the host, a
command line, a guest's configuration file or a mount is checked here, before any plan or provider sees it.

Each check returns None when the value is fine, else ``(problem, fix)`` for the loader's one-line error.
Plans quote every value anyway (lab.stacks.shell); these rules keep values meaningful where quoting cannot
help: a path that escapes a directory, a ZFS keyword, a mount over /etc, a line break in rc.conf.
"""

from __future__ import annotations

import ipaddress
import math
import re

Problem = tuple[str, str] | None

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
"""Lab, host and network names: they name VMs, files under the lab directory and QEMU netdev ids."""
NAME_FIX = "use 1 to 31 lowercase letters, digits and '-', starting with a letter"

RESERVED_NETWORKS = ("management",)
"""The QEMU provider's own first NIC (netdev ``management``); a topology network of that name would share it."""

DISK_SERIAL_PREFIX = "beast-"
ATA_SERIAL_MAX = 20
"""QEMU's ide-hd keeps the first 20 characters of a serial and drops the rest without a word; the guests find
the shared disks by serial (``beast-<disk>``), so a longer disk name would leave its link missing."""
DISK_NAME_MAX = ATA_SERIAL_MAX - len(DISK_SERIAL_PREFIX)
DISK_NAME_RE = re.compile(rf"^[a-z][a-z0-9-]{{0,{DISK_NAME_MAX - 1}}}$")

POOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,60}$")
ZFS_VDEV_WORDS = ("mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare", "log", "cache", "special",
                  "dedup", "logs", "spares")
"""zpool-create(8): "the pool names mirror, raidz, draid, spare and log are reserved". The other vdev words
(cache, special, dedup) are refused too: ``zpool add <pool> cache <disk>`` would read as nonsense."""
ZFS_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")
"""zpool-create(8): "... as are names beginning with mirror, raidz, draid, and spare"."""
ZFS_DISKLIKE_RE = re.compile(r"^c[0-9]")
"""OpenZFS's pool_namecheck refuses c[0-9]... as a "reserved disk name" (Solaris controller names)."""
DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
"""A zvol's name inside its pool: one ZFS dataset component, never '.', '..' or an option such as -rf."""

GEOM_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
"""Multipath, stripe and arbitrator device names (/dev/multipath/NAME, /dev/mapper/NAME, /dev/md/NAME)."""
IQN_RE = re.compile(r"^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
                    r"(:[A-Za-z0-9.:_-]+)?$")
IQN_MAX = 223
"""RFC 3720: an iSCSI name is at most 223 bytes."""

DESCRIPTION_MAX = 120

MOUNT_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SYSTEM_TREES = ("bin", "boot", "compat", "dev", "etc", "home", "lib", "lib32", "lib64", "libexec", "libx32",
                "lost+found", "media", "net", "opt", "proc", "rescue", "root", "run", "sbin", "snap", "sys",
                "tmp", "usr", "var")
"""Top-level trees of Debian and FreeBSD guests: the client plan formats a device and mounts it, so a mount
point in (or over) one of them would hide or destroy the guest's own files."""
MOUNTPOINT_MAX = 200

MAX_MEMORY_MB = 65536
"""64 GiB: a lab VM needs 2 GiB; far above that is a typo (2^63-1 MB passed QEMU's -m as text)."""
MAX_BOOT_TIMEOUT_S = 3600
MAX_KILL_AFTER_S = 3600
MAX_DISKS = 64
"""Shared disks of one lab: each is a file on the host attached to both controllers (FreeBSD's ada/da
numbering and QEMU's AHCI/SCSI ports run out well before a typo such as 6400 would)."""
MAX_DISK_MB = 1 << 20
MAX_TOTAL_DISK_MB = 1 << 20
"""1 TiB for all shared disks together: they are fully allocated files on one host disk, copied whole by
every snapshot."""

MANAGEMENT_NETWORK = ipaddress.IPv4Network("10.0.2.0/24")
"""QEMU's -netdev user network (its default net=, the management NIC) and VirtualBox's NAT adapter under
Vagrant: both give the guest 10.0.2.15 and route 10.0.2.0/24 through it, so a lab network there is unreachable."""
UNUSABLE_NETWORKS = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "the unspecified 'this network' range 0.0.0.0/8"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "the loopback range 127.0.0.0/8"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "the link-local range 169.254.0.0/16"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "the multicast range 224.0.0.0/4"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "the reserved range 240.0.0.0/4 (and the broadcast address)"),
)
"""RFC 6890 ranges no NIC of a lab network may be given."""

ZFS_MIN_SLOP = 128 << 20
ZFS_MAX_SLOP = 128 << 30
ZFS_SLOP_SHIFT = 5
"""OpenZFS (2.1 on) keeps back slop space from every pool (spa_misc.c spa_get_slop_space):
max(min(size >> spa_slop_shift, spa_max_slop), min(size / 2, spa_min_slop)), with spa_slop_shift 5,
spa_min_slop 128 MiB and spa_max_slop 128 GiB; a volume larger than the rest cannot be created."""
ZVOL_ALIGN = 1 << 20
"""Volume sizes are whole MiB: ``zfs create -V`` refuses a size that is not a multiple of the volume block size."""


def name_problem(name: str, kind: str) -> Problem:
    if not NAME_RE.fullmatch(name):
        return f"'{name}' is not a valid {kind} name", NAME_FIX
    return None


def network_problem(name: str) -> Problem:
    if problem := name_problem(name, "network"):
        return problem
    if name in RESERVED_NETWORKS:
        return f"'{name}' is the name of the lab's own management network", "give the network another name"
    return None


def disk_problem(name: str) -> Problem:
    if not DISK_NAME_RE.fullmatch(name):
        return (f"'{name}' is not a valid disk name",
                f"use 1 to {DISK_NAME_MAX} lowercase letters, digits and '-', starting with a letter "
                f"(its serial {DISK_SERIAL_PREFIX}<name> must fit an ATA serial's {ATA_SERIAL_MAX} characters)")
    return None


def pool_problem(name: str) -> Problem:
    if not POOL_RE.fullmatch(name):
        return ("is not a valid ZFS pool name",
                "start with a letter; use up to 61 letters, digits, '_', '-', '.', ':'")
    lowered = name.lower()
    if lowered in ZFS_VDEV_WORDS or lowered.startswith(ZFS_RESERVED_PREFIXES):
        return (f"'{name}' is reserved by ZFS (a vdev keyword, or a name starting with "
                f"{', '.join(ZFS_RESERVED_PREFIXES)})", "give the pool another name, e.g. ctrl-a_m0")
    if ZFS_DISKLIKE_RE.match(name):
        return f"'{name}' looks like a disk name (c[0-9]...), which ZFS reserves", "give the pool another name"
    return None


def dataset_problem(name: str) -> Problem:
    if not DATASET_RE.fullmatch(name):
        return (f"'{name}' is not a valid dataset name",
                "use up to 64 letters, digits, '_', '-', '.', ':', starting with a letter or digit")
    return None


def device_problem(name: str) -> Problem:
    if not GEOM_NAME_RE.fullmatch(name):
        return f"'{name}' is not a valid device name", "use up to 31 letters, digits and '_', starting with a letter"
    return None


def iqn_problem(value: str) -> Problem:
    if len(value) > IQN_MAX or not IQN_RE.fullmatch(value):
        return (f"'{value}' is not an iSCSI qualified name",
                f"write it like iqn.2016-01.local.sss.private:target0 (at most {IQN_MAX} characters)")
    return None


def text_problem(value: str, limit: int = DESCRIPTION_MAX) -> Problem:
    """One line of printable text: descriptions end up in guest files that rc(8) runs as shell."""
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        return (f"contains the control character {bad!r}",
                "write it on one line with printable characters only")
    if len(value) > limit:
        return f"is {len(value)} characters long", f"use at most {limit}"
    return None


def mountpoint_problem(path: str) -> Problem:
    """An absolute, normalised path to a directory of its own, outside the guest's system trees."""
    fix = "write an absolute path of its own, like /storage or /mnt/beast"
    if not path.startswith("/") or len(path) > MOUNTPOINT_MAX:
        return f"'{path}' is not an absolute path", fix
    segments = path[1:].split("/")
    if any(s in ("", ".", "..") for s in segments):
        return f"'{path}' is not a normalised path (empty, '.' or '..' segments, or a trailing '/')", fix
    bad = next((s for s in segments if not MOUNT_SEGMENT_RE.fullmatch(s)), None)
    if bad is not None:
        return f"'{path}' has the segment '{bad}'", "use letters, digits, '_', '-' and '.' in each segment"
    if segments[0] in SYSTEM_TREES:
        return (f"'{path}' is inside the guest's system tree /{segments[0]}",
                "mount the lab's filesystem on a fresh directory such as /storage")
    return None


def network_range_problem(cidr: ipaddress.IPv4Network) -> Problem:
    """A lab network must be an ordinary private or public range, apart from the providers' own NAT."""
    if cidr.overlaps(MANAGEMENT_NETWORK):
        return (f"{cidr} overlaps {MANAGEMENT_NETWORK}, the management network QEMU's user-mode NIC and "
                "Vagrant's NAT adapter give every VM", "use another range, like 192.168.56.0/24")
    for reserved, what in UNUSABLE_NETWORKS:
        if cidr.overlaps(reserved):
            return f"{cidr} overlaps {what}, which no lab NIC can use", "use a private range like 192.168.56.0/24"
    return None


def slop_bytes(pool_bytes: int) -> int:
    """OpenZFS's slop space for a pool of ``pool_bytes`` (see ZFS_SLOP_SHIFT)."""
    return max(min(pool_bytes >> ZFS_SLOP_SHIFT, ZFS_MAX_SLOP), min(pool_bytes >> 1, ZFS_MIN_SLOP))


def iqn_key(value: str) -> str:
    """RFC 3722 stringprep folds case: two iSCSI names that differ only in case are the same name."""
    return value.casefold()


def finite_problem(value: float, low: float, high: float, unit: str) -> Problem:
    if not math.isfinite(value):
        return f"{value} is not a finite number", f"use {low:g} to {high:g} {unit}"
    if not low <= value <= high:
        return f"{value:g} is out of range", f"use {low:g} to {high:g} {unit}"
    return None
