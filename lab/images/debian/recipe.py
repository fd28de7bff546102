"""The Debian image's recipe: what goes into the image, and the hash that names its cache directory.

Holds the package lists, units, files and sizes, and ``DebianRecipe.hash``. Must not know how the image
is built (debootstrap, chroot) or where it is cached: changing anything hashed here rebuilds every
user's cached image, so the hash of the default recipe is pinned by a test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

BUILD_SCRIPT_VERSION = 1
"""Bump when the build steps change in a way the recipe fields do not capture."""

_HERE = Path(__file__).resolve().parent.parent
IDENTITY_SCRIPT = _HERE / "beast-identity.sh"
IDENTITY_UNIT = _HERE / "beast-identity.service"

SSHD_CONFIG = b"""\
# BeaST Lab: root logs in with the key from beast.sshkey only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

FSTAB = b"/dev/vda / ext4 defaults,errors=remount-ro 0 0\n"

HOSTS = b"""\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

INITRAMFS_CONF = b"""\
# BeaST Lab: only the modules listed in ../modules (root on virtio-blk ext4): a small initrd unpacks
# in about a second under TCG instead of ten.
MODULES=list
COMPRESS=zstd
"""

@dataclass(frozen=True)
class Stage:
    """One build stage: a name shown in the progress display and the packages it installs."""

    name: str
    packages: tuple[str, ...] = ()


def _names(words: str) -> tuple[str, ...]:
    """A recipe's list of package, module or unit names, written as one whitespace-separated string."""
    return tuple(words.split())


@dataclass(frozen=True)
class DebianRecipe:
    """Everything that decides the image's contents; its hash names the cache directory."""

    suite: str = "bookworm"
    variant: str = "minbase"
    components: tuple[str, ...] = ("main", "contrib")
    base_packages: tuple[str, ...] = _names(
        "systemd-sysv udev kmod iproute2 openssh-server initramfs-tools procps less zstd"
    )
    kernel_packages: tuple[str, ...] = ("linux-image-amd64", "linux-headers-amd64")
    zfs_packages: tuple[str, ...] = ("zfs-dkms", "zfsutils-linux")
    storage_packages: tuple[str, ...] = _names(
        "targetcli-fb open-iscsi multipath-tools mdadm sg3-utils lsscsi dbus e2fsprogs python3 "
        "util-linux coreutils fio"
    )
    cluster_packages: tuple[str, ...] = _names("corosync pacemaker pacemaker-cli-utils resource-agents fence-virt")
    """arbitrator = "cluster": Corosync and Pacemaker, ocf:heartbeat:ZFS, and the stock fence_virt agent
    (serial mode, to the lab's fence listener). Installed in every image, started only in cluster mode."""
    initramfs_modules: tuple[str, ...] = ("virtio_pci", "virtio_blk", "ext4")
    required_modules: tuple[str, ...] = _names(
        "virtio_pci virtio_blk virtio_net ext4 iscsi_tcp target_core_iblock iscsi_target_mod "
        "dm_multipath raid0 zfs ahci virtio_scsi sd_mod"
    )
    disabled_units: tuple[str, ...] = _names(
        "multipathd.service multipathd.socket mdmonitor-oneshot.timer mdcheck_start.timer "
        "mdcheck_continue.timer corosync.service pacemaker.service apt-daily.timer apt-daily-upgrade.timer "
        "dpkg-db-backup.timer "
        "e2scrub_all.timer e2scrub_reap.service fstrim.timer "
        "rtslib-fb-targetctl.service"
    )
    """Not started at boot. rtslib-fb-targetctl restores the LIO targets ``targetcli saveconfig`` kept: a
    controller started again after it failed would then serve its targets before it holds the pools behind
    them, and a client that logs in to a target missing its LUN gets "critical target error" on the path,
    an error dm-multipath hands up instead of failing over (found by the drill: ext4 on the client aborted
    its journal and went read-only through the whole give-back). A restarted controller's targets are built
    by the recovery plan once its pools are there, as provisioning built them."""
    masked_units: tuple[str, ...] = (
        # started by udev for any md array, so disabling is not enough
        "mdmonitor.service",
        # an empty /etc/machine-id means "first boot": it would wait for answers on the serial console
        "systemd-firstboot.service",
    )
    absent_files: tuple[str, ...] = (
        "etc/hostid",
        "etc/zfs/zpool.cache",
        "etc/iscsi/initiatorname.iscsi",
    )
    root_fs_bytes: int = 3 * 1024**3
    files: tuple[tuple[str, bytes, int], ...] = field(default_factory=lambda: _image_files())
    build_script_version: int = BUILD_SCRIPT_VERSION

    def stages(self) -> tuple[Stage, ...]:
        return (
            Stage("debootstrap", self.base_packages),
            Stage("kernel", self.kernel_packages),
            Stage("zfs-dkms", self.zfs_packages),
            Stage("storage tools", self.storage_packages),
            Stage("cluster", self.cluster_packages),
            Stage("identity service"),
            Stage("root filesystem"),
            Stage("qcow2"),
        )

    def hash(self) -> str:
        """sha256 over a canonical JSON of the recipe (file contents by digest)."""
        data = {
            "suite": self.suite,
            "variant": self.variant,
            "components": list(self.components),
            "stages": [[s.name, list(s.packages)] for s in self.stages()],
            "initramfs_modules": list(self.initramfs_modules),
            "required_modules": list(self.required_modules),
            "disabled_units": list(self.disabled_units),
            "masked_units": list(self.masked_units),
            "absent_files": list(self.absent_files),
            "root_fs_bytes": self.root_fs_bytes,
            "files": [[path, hashlib.sha256(content).hexdigest(), mode] for path, content, mode in self.files],
            "build_script_version": self.build_script_version,
        }
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _image_files() -> tuple[tuple[str, bytes, int], ...]:
    """Files written into the image (guest path, content, mode); part of the recipe hash."""
    return (
        ("usr/local/sbin/beast-identity", IDENTITY_SCRIPT.read_bytes(), 0o755),
        ("etc/systemd/system/beast-identity.service", IDENTITY_UNIT.read_bytes(), 0o644),
        ("etc/ssh/sshd_config.d/beast-lab.conf", SSHD_CONFIG, 0o644),
        ("etc/fstab", FSTAB, 0o644),
        ("etc/initramfs-tools/conf.d/beast-lab.conf", INITRAMFS_CONF, 0o644),
        ("etc/hosts", HOSTS, 0o644),
        ("etc/hostname", b"localhost\n", 0o644),
        ("etc/resolv.conf", b"", 0o644),
    )


def debian_recipe_hash(recipe: DebianRecipe | None = None) -> str:
    return (recipe or DebianRecipe()).hash()
