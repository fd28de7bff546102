"""The build's steps: debootstrap, then packages and files installed in a chroot, then the disk files.

``DebianImageBuild`` runs each stage's host commands with a watchdog and streams their output into the
``BuildLog``. Must not know about the cache, the lock or the progress display's layout (see build.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.progress import Progress, TaskID

from lab.errors import LabError
from lab.images.debian.cache import INITRD, KERNEL, ROOT_DISK
from lab.images.debian.mounts import mounts_under, remove_build_tree, unmount_all_under
from lab.images.debian.recipe import DebianRecipe

COMMAND_TIMEOUT_SECONDS = 40 * 60
FALLBACK_MIRROR = "http://deb.debian.org/debian"
POLICY_RC_D = b"#!/bin/sh\n# Keep package scripts from starting services inside the build chroot.\nexit 101\n"


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

    def cluster(self) -> None:
        self.apt_install(self.recipe.cluster_packages)

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
