"""The Debian bookworm guest image: built once by debootstrap, cached under a hash of its recipe.

The image has no boot loader: providers boot its kernel and initrd directly with the per-VM identity
on the kernel command line (see ``kernel_cmdline``), on top of a per-VM qcow2 overlay of ``root.qcow2``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from lab.errors import LabError, MissingToolError
from lab.images import GuestImage, default_cache_dir
from lab.images.cache import build_lock

BUILD_SCRIPT_VERSION = 1
"""Bump when the build steps change in a way the recipe fields do not capture."""

IMAGE_NAME = "debian-bookworm"
ROOT_DISK = "root.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
MANIFEST = "image.json"
BUILD_LOG = "build.log"
COMMAND_TIMEOUT_SECONDS = 40 * 60
FALLBACK_MIRROR = "http://deb.debian.org/debian"
ISCSI_IQN_PREFIX = "iqn.2016-01.local.sss"

_HERE = Path(__file__).resolve().parent
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

POLICY_RC_D = b"#!/bin/sh\n# Keep package scripts from starting services inside the build chroot.\nexit 101\n"


@dataclass(frozen=True)
class Stage:
    """One build stage: a name shown in the progress display and the packages it installs."""

    name: str
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class DebianRecipe:
    """Everything that decides the image's contents; its hash names the cache directory."""

    suite: str = "bookworm"
    variant: str = "minbase"
    components: tuple[str, ...] = ("main", "contrib")
    base_packages: tuple[str, ...] = (
        "systemd-sysv",
        "udev",
        "kmod",
        "iproute2",
        "openssh-server",
        "initramfs-tools",
        "procps",
        "less",
        "zstd",
    )
    kernel_packages: tuple[str, ...] = ("linux-image-amd64", "linux-headers-amd64")
    zfs_packages: tuple[str, ...] = ("zfs-dkms", "zfsutils-linux")
    storage_packages: tuple[str, ...] = (
        "targetcli-fb",
        "open-iscsi",
        "multipath-tools",
        "mdadm",
        "sg3-utils",
        "lsscsi",
        "dbus",
        "e2fsprogs",
        "python3",
        "util-linux",
        "coreutils",
    )
    initramfs_modules: tuple[str, ...] = ("virtio_pci", "virtio_blk", "ext4")
    required_modules: tuple[str, ...] = (
        "virtio_pci",
        "virtio_blk",
        "virtio_net",
        "ext4",
        "iscsi_tcp",
        "target_core_iblock",
        "iscsi_target_mod",
        "dm_multipath",
        "raid0",
        "zfs",
        "ahci",
        "virtio_scsi",
        "sd_mod",
    )
    disabled_units: tuple[str, ...] = (
        "multipathd.service",
        "multipathd.socket",
        "mdmonitor-oneshot.timer",
        "mdcheck_start.timer",
        "mdcheck_continue.timer",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
    )
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


def image_dir_for(cache_dir: Path, recipe_hash: str) -> Path:
    return cache_dir / "images" / f"debian-{recipe_hash[:12]}"


# --- the kernel command line contract with the providers ---------------------------------------

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTID = re.compile(r"^(0x)?[0-9a-fA-F]{8}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def identity_cmdline(hostname: str, hostid: str, interfaces: Sequence[tuple[str, str]], ssh_pubkey: str) -> str:
    """The ``beast.*`` parameters beast-identity.service applies at boot (see beast-identity.sh).

    ``interfaces`` is ``[(mac, "addr/prefix"), ...]``; ``ssh_pubkey`` is one OpenSSH public key line.
    """
    if not _HOSTNAME.match(hostname):
        raise LabError(f"hostname {hostname!r} is not a valid host name: use lower-case letters, digits and '-'")
    if not _HOSTID.match(hostid) or int(hostid, 16) == 0:
        raise LabError(f"hostid {hostid!r} is not 8 hex digits (non-zero): use e.g. '0a1b2c3d'")
    parts = [f"beast.hostname={hostname}", f"beast.hostid={hostid.lower().removeprefix('0x')}"]
    for mac, address in interfaces:
        if not _MAC.match(mac):
            raise LabError(f"MAC {mac!r} of {hostname} is not six ':'-separated hex bytes: use e.g. 52:54:00:be:00:01")
        try:
            interface = ipaddress.ip_interface(address)
        except ValueError:
            raise LabError(f"address {address!r} of {hostname} is not ADDR/PREFIX: use e.g. 192.168.56.10/24") from None
        if "/" not in address:
            raise LabError(f"address {address!r} of {hostname} has no prefix length: use e.g. {address}/24")
        parts.append(f"beast.if={mac.lower()},{interface.with_prefixlen}")
    key = ssh_pubkey.strip()
    if not key or "\n" in key or len(key.split()) < 2:
        raise LabError(f"the SSH public key for {hostname} is not one OpenSSH public key line (type base64 [comment])")
    parts.append(f"beast.sshkey={base64.b64encode(key.encode()).decode()}")
    return " ".join(parts)


def kernel_cmdline(
    hostname: str,
    hostid: str,
    interfaces: Sequence[tuple[str, str]],
    ssh_pubkey: str,
    root_device: str = "/dev/vda",
) -> str:
    """The whole ``-append`` string for booting the Debian image with a per-VM identity."""
    identity = identity_cmdline(hostname, hostid, interfaces, ssh_pubkey)
    return f"root={root_device} rw console=ttyS0 {identity}"


# --- the cache ----------------------------------------------------------------------------------


def cached_image(image_dir: Path, recipe_hash: str) -> GuestImage | None:
    """The image in ``image_dir`` if it is complete and built from ``recipe_hash``, else None.

    A build writes the manifest last and renames its temp dir into place, so a directory without a
    matching manifest or with a missing file is never an image.
    """
    try:
        manifest = json.loads((image_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe_hash") != recipe_hash:
        return None
    paths = [image_dir / ROOT_DISK, image_dir / KERNEL, image_dir / INITRD]
    if not all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return None
    return GuestImage(
        name=IMAGE_NAME,
        root_disk=paths[0],
        kernel=paths[1],
        initrd=paths[2],
        recipe_hash=recipe_hash,
        root_device=manifest.get("root_device", "/dev/vda"),
    )


def ensure_debian_image(
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    recipe: DebianRecipe | None = None,
) -> GuestImage:
    """The cached Debian image for the current recipe, building it first if needed.

    A build takes 5–8 min, most of it DKMS compiling ZFS for the guest kernel.

    ``progress``: a caller's rich Progress to add the stage tasks to; by default one is shown on stderr.
    """
    recipe = recipe or DebianRecipe()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    recipe_hash = recipe.hash()
    image_dir = image_dir_for(cache_dir, recipe_hash)
    if not force:
        image = cached_image(image_dir, recipe_hash)
        if image:
            return image
    check_build_host()
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(image_dir.with_name(image_dir.name + ".lock")):
        if not force:
            image = cached_image(image_dir, recipe_hash)
            if image:
                return image
        remove_stale_builds(image_dir)
        build_debian_image(recipe, image_dir, progress)
    image = cached_image(image_dir, recipe_hash)
    if image is None:
        raise LabError(f"the Debian image build finished but {image_dir} is incomplete: rerun with force=True")
    return image


def check_build_host() -> None:
    if os.geteuid() != 0:
        raise LabError("building the Debian guest image needs root (debootstrap, chroot): run it as root")
    tools = {
        "debootstrap": "debootstrap",
        "qemu-img": "qemu-utils",
        "mkfs.ext4": "e2fsprogs",
        "chroot": "coreutils",
        "mount": "mount",
    }
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        names = ", ".join(t for t, p in tools.items() if p in missing)
        raise MissingToolError(f"{names} not found: install with `apt-get install -y {' '.join(missing)}`")


def remove_stale_builds(image_dir: Path) -> None:
    """Remove temp dirs left by builds that died (the caller holds the lock, so none is running)."""
    for stale in image_dir.parent.glob(f".{image_dir.name}.build-*"):
        remove_build_tree(stale)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    points = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all_under(path: Path) -> None:
    for point in mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


def remove_build_tree(path: Path) -> None:
    """Delete a build dir, refusing while anything is mounted below it (a bind of /dev would be wiped)."""
    if not path.exists():
        return
    unmount_all_under(path)
    left = mounts_under(path)
    if left:
        raise LabError(f"cannot remove {path}: still mounted: {', '.join(left)}; unmount them and retry")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


# --- the build ----------------------------------------------------------------------------------


def host_debian_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 .sources or one-line .list), else deb.debian.org."""
    apt = Path("/etc/apt")
    candidates = [
        apt / "sources.list",
        *sorted(apt.glob("sources.list.d/*.list")),
        *sorted(apt.glob("sources.list.d/*.sources")),
    ]
    for source in candidates:
        try:
            text = source.read_text()
        except OSError:
            continue
        for uri in _debian_uris(text):
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def _debian_uris(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        words = line.split()
        uris: list[str] = []
        if words[:1] == ["deb"]:
            uris = [w for w in words[1:] if "://" in w][:1]
        elif line.lower().startswith("uris:"):
            uris = line.split(":", 1)[1].split()
        for uri in uris:
            if re.search(r"/debian/?$", uri) and "security" not in uri:
                yield uri


class BuildLog:
    """The build's full log file, and the last line of output shown next to the running stage."""

    def __init__(self, path: Path, progress: Progress):
        self.path = path
        self.file = open(path, "a", buffering=1, errors="replace")
        self.progress = progress
        self.task: TaskID | None = None
        self.stage = ""

    def note(self, text: str) -> None:
        if self.file.closed:
            return
        self.file.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")

    def output(self, line: str) -> None:
        self.file.write(line)
        if self.task is not None and line.strip():
            self.progress.update(self.task, detail=line.strip()[:70])

    def close(self) -> None:
        self.file.close()


def kill_process_group(proc: subprocess.Popen) -> None:
    """Kill a build command and everything it started (dpkg, dkms, make, cc1 ...)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class StageFailed(Exception):
    pass


class DebianImageBuild:
    """One build of the image in a temp dir next to its final place."""

    def __init__(self, recipe: DebianRecipe, work_dir: Path, log: BuildLog):
        self.recipe = recipe
        self.work_dir = work_dir
        self.rootfs = work_dir / "rootfs"
        self.log = log
        self.mirror = host_debian_mirror()
        self.kernel_release = ""

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> None:
        """Run a host command, streaming its output into the log; raise StageFailed on failure."""
        self.log.note("$ " + " ".join(argv))
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LC_ALL": "C.UTF-8",
            "HOME": "/root",
            "DEBIAN_FRONTEND": "noninteractive",
            "DEBCONF_NONINTERACTIVE_SEEN": "true",
        }
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        watchdog = threading.Timer(timeout, kill_process_group, [proc])
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.log.output(line)
        finally:
            watchdog.cancel()
            kill_process_group(proc)  # before wait: the unreaped leader keeps its pgid from being reused
            code = proc.wait()
        if code != 0:
            raise StageFailed(f"`{' '.join(argv)[:120]}` exited with {code}")

    def chroot(self, *argv: str) -> None:
        self.run(["chroot", str(self.rootfs), *argv])

    def chroot_output(self, *argv: str) -> str:
        result = subprocess.run(
            ["chroot", str(self.rootfs), *argv],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
        )
        self.log.note(f"$ chroot {' '.join(argv)} -> {result.returncode}\n{result.stdout}{result.stderr}")
        return result.stdout

    def apt_install(self, packages: Sequence[str]) -> None:
        self.chroot("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages)

    @contextmanager
    def chroot_mounts(self) -> Iterator[None]:
        """/proc /sys /dev /dev/pts bound into the chroot, always unmounted afterwards."""
        try:
            for name in ("proc", "sys", "dev", "dev/pts"):
                self.run(["mount", "--bind", f"/{name}", str(self.rootfs / name)])
            yield
        finally:
            unmount_all_under(self.rootfs)
            left = mounts_under(self.rootfs)
            if left:
                raise LabError(f"could not unmount {', '.join(left)} after the image build: unmount them by hand")

    def write(self, guest_path: str, content: bytes, mode: int = 0o644) -> None:
        path = self.rootfs / guest_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_bytes(content)
        path.chmod(mode)

    # stages -------------------------------------------------------------------------------

    def debootstrap(self) -> None:
        r = self.recipe
        self.run(
            [
                "debootstrap",
                f"--variant={r.variant}",
                f"--components={','.join(r.components)}",
                f"--include={','.join(r.base_packages)}",
                r.suite,
                str(self.rootfs),
                self.mirror,
            ]
        )

    def prepare_chroot(self) -> None:
        """apt sources with every component, and no service starts while packages install."""
        r = self.recipe
        components = " ".join(r.components)
        self.write(
            "etc/apt/sources.list",
            f"deb {self.mirror} {r.suite} {components}\ndeb {self.mirror} {r.suite}-updates {components}\n".encode(),
        )
        self.write("usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
        self.chroot("apt-get", "update", "-q")

    def kernel(self) -> None:
        self.prepare_chroot()
        self.write("etc/initramfs-tools/modules", "".join(f"{m}\n" for m in self.recipe.initramfs_modules).encode())
        self.apt_install(self.recipe.kernel_packages)

    def zfs(self) -> None:
        self.apt_install(self.recipe.zfs_packages)

    def storage_tools(self) -> None:
        self.apt_install(self.recipe.storage_packages)

    def identity_service(self) -> None:
        """Install the identity unit, then strip everything that must differ between VMs."""
        for guest_path, content, mode in self.recipe.files:
            self.write(guest_path, content, mode)
        self.chroot("systemctl", "enable", "beast-identity.service", "serial-getty@ttyS0.service")
        for unit in self.recipe.disabled_units:
            if (self.rootfs / "lib/systemd/system" / unit).exists():
                self.chroot("systemctl", "disable", unit)
        self.chroot("systemctl", "mask", *self.recipe.masked_units)
        self.chroot("passwd", "--lock", "root")
        self.chroot("update-initramfs", "-u", "-k", "all")
        self.chroot("apt-get", "clean")
        for guest_path in self.recipe.absent_files:
            (self.rootfs / guest_path).unlink(missing_ok=True)
        for key in (self.rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        self.write("etc/machine-id", b"", 0o444)
        (self.rootfs / "var/lib/dbus").mkdir(parents=True, exist_ok=True)
        (self.rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
        os.symlink("/etc/machine-id", self.rootfs / "var/lib/dbus/machine-id")
        (self.rootfs / "usr/sbin/policy-rc.d").unlink()
        self.verify_rootfs()

    def verify_rootfs(self) -> None:
        kernel_version = self.kernel_version()
        missing = [
            m
            for m in self.recipe.required_modules
            if not self.chroot_output("modinfo", "-k", kernel_version, "-F", "filename", m).strip()
        ]
        if missing:
            raise StageFailed(f"kernel {kernel_version} lacks modules: {', '.join(missing)}")
        initrd_listing = self.chroot_output("lsinitramfs", f"/boot/initrd.img-{kernel_version}")
        builtin = (self.rootfs / f"lib/modules/{kernel_version}/modules.builtin").read_text()
        for module in self.recipe.initramfs_modules:
            names = {f"/{module}.ko", f"/{module.replace('_', '-')}.ko"}
            if not any(n in initrd_listing or n in builtin for n in names):
                raise StageFailed(f"initrd.img-{kernel_version} lacks {module}")
        present = [p for p in self.recipe.absent_files if (self.rootfs / p).exists()]
        present += [str(k.relative_to(self.rootfs)) for k in (self.rootfs / "etc/ssh").glob("ssh_host_*")]
        if (self.rootfs / "etc/machine-id").read_bytes().strip():
            present.append("etc/machine-id (not empty)")
        if present:
            raise StageFailed(f"per-VM files left in the image: {', '.join(present)}")

    def kernel_version(self) -> str:
        versions = sorted(p.name for p in (self.rootfs / "lib/modules").iterdir() if (p / "modules.dep").exists())
        if len(versions) != 1:
            raise StageFailed(f"expected one kernel in the image, found {versions or 'none'}")
        return versions[0]

    def root_filesystem(self) -> None:
        version = self.kernel_version()
        shutil.copyfile(self.rootfs / f"boot/vmlinuz-{version}", self.work_dir / KERNEL)
        shutil.copyfile(self.rootfs / f"boot/initrd.img-{version}", self.work_dir / INITRD)
        ext4 = self.work_dir / "root.ext4"
        with open(ext4, "wb") as sparse:
            sparse.truncate(self.recipe.root_fs_bytes)
        self.run(["mkfs.ext4", "-F", "-q", "-L", "beast-root", "-d", str(self.rootfs), str(ext4)])
        remove_build_tree(self.rootfs)
        self.kernel_release = version

    def qcow2(self) -> None:
        ext4 = self.work_dir / "root.ext4"
        self.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(ext4), str(self.work_dir / ROOT_DISK)])
        ext4.unlink()


def build_debian_image(recipe: DebianRecipe, image_dir: Path, progress: Progress | None = None) -> None:
    """Build into a temp dir beside ``image_dir`` and rename it into place when complete.

    The caller holds the build lock. On failure the log is kept as ``<image_dir>.failed.log``.
    """
    work_dir = image_dir.with_name(f".{image_dir.name}.build-{os.getpid()}")
    failed_log = image_dir.with_name(image_dir.name + ".failed.log")
    remove_build_tree(work_dir)
    work_dir.mkdir(parents=True)
    owns_progress = progress is None
    if progress is None:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<18}"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=Console(stderr=True),
        )
        progress.start()
    log = BuildLog(work_dir / BUILD_LOG, progress)
    build = DebianImageBuild(recipe, work_dir, log)
    log.note(f"building {image_dir.name} (recipe {recipe.hash()}) from {build.mirror}")
    stages = recipe.stages()
    tasks = {s.name: progress.add_task(s.name, total=1, start=False, detail="") for s in stages}
    steps = {
        "kernel": build.kernel,
        "zfs-dkms": build.zfs,
        "storage tools": build.storage_tools,
        "identity service": build.identity_service,
    }
    started = time.monotonic()
    current = ""

    def stage(name: str, step) -> None:
        nonlocal current
        current = name
        log.task = tasks[name]
        log.note(f"=== stage {name}")
        progress.start_task(tasks[name])
        stage_started = time.monotonic()
        step()
        progress.update(tasks[name], completed=1, detail=f"{time.monotonic() - stage_started:.0f} s")
        log.task = None

    try:
        try:
            stage("debootstrap", build.debootstrap)
            with build.chroot_mounts():
                for name, step in steps.items():
                    stage(name, step)
        finally:
            unmount_all_under(build.rootfs)
        stage("root filesystem", build.root_filesystem)
        stage("qcow2", build.qcow2)
        manifest = {
            "name": IMAGE_NAME,
            "recipe_hash": recipe.hash(),
            "kernel_release": build.kernel_release,
            "root_device": "/dev/vda",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - started),
            "mirror": build.mirror,
        }
        log.note(f"built in {manifest['build_seconds']} s")
        log.close()
        (work_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if image_dir.exists():
            remove_build_tree(image_dir)
        os.rename(work_dir, image_dir)
        failed_log.unlink(missing_ok=True)
    except BaseException as err:
        log.note(f"FAILED in stage {current}: {err!r}")
        log.close()
        try:
            shutil.copyfile(work_dir / BUILD_LOG, failed_log)
        finally:
            remove_build_tree(work_dir)
        if isinstance(err, StageFailed | OSError | subprocess.SubprocessError):
            raise LabError(f"Debian image build failed in stage '{current}' ({err}): see {failed_log}") from err
        raise
    finally:
        if owns_progress:
            progress.stop()


__all__ = [
    "DebianRecipe",
    "debian_recipe_hash",
    "ensure_debian_image",
    "identity_cmdline",
    "kernel_cmdline",
]
