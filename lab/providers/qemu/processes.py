"""The host side of a qemu lab: the SSH key, shared disk files, VDE switches, and each host's qemu process.

Starts and finds processes by pid file (lab.labdir); speaks neither QMP nor SSH, and runs nothing in a guest.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from lab.errors import LabError
from lab.labdir import (
    check_socket_path,
    inside,
    owned_pid,
    read_pidfile,
    remove_inside,
    stop_owned_process,
    wait_for_exit,
)
from lab.providers.qemu.argv import DISK_CACHE_MODE, QemuCommandLine
from lab.providers.qemu.fence.service import stop_listener
from lab.qemu_leaf.accel import Accel, choose_accel, probe_kernel

QEMU_IMG = "qemu-img"
VDE_SWITCH = "vde_switch"
LAUNCH_TIMEOUT_SECONDS = 120.0
LAUNCH_ATTEMPTS = 3


class QemuProcesses(QemuCommandLine):
    """What a lab's hosts need before they boot, and starting, finding and stopping their processes."""

    image: Any
    cache_dir: Path | None
    forced_accel: str | None
    stack_name: str | None

    def stop_all_processes(self) -> None:
        """Every qemu and vde_switch this lab started, found by pid file, checked by cmdline (the launcher,
        qemu before it daemonizes, has the same ``-pidfile`` argument as the qemu it becomes). The fence
        listener goes first, so that it starts no VM while they are being stopped."""
        stop_listener(self)
        vm_root = inside(self.lab_dir, self.lab_dir / "vm")
        vm_dirs = sorted(p for p in vm_root.iterdir() if p.is_dir()) if vm_root.is_dir() else []
        for vm_dir in vm_dirs:
            launcher = read_pidfile(vm_dir / "launcher.pid")
            if launcher is not None and not wait_for_exit(launcher, vm_dir / "qemu.pid", 10.0):
                stop_owned_process(launcher, vm_dir / "qemu.pid")
        for vm_dir in vm_dirs:
            pid = owned_pid(vm_dir / "qemu.pid")
            if pid is not None:
                stop_owned_process(pid, vm_dir / "qemu.pid")
        net_root = inside(self.lab_dir, self.lab_dir / "net")
        for pidfile in sorted(net_root.glob("*.pid")) if net_root.is_dir() else []:
            pid = owned_pid(pidfile)
            if pid is not None:
                stop_owned_process(pid, pidfile)

    def running_pid(self, host: str) -> int | None:
        return owned_pid(self.vm_paths(host).pidfile)

    def check_socket_paths(self) -> None:
        for host in self.topology.hosts:
            paths = self.vm_paths(host)
            check_socket_path(paths.qmp)
            check_socket_path(paths.console_socket)
            check_socket_path(self.fence_socket(host))
        for network in self.topology.networks:
            check_socket_path(self.switch_dir(network) / ".00000-00000")
            check_socket_path(self.switch_mgmt(network))

    def _all_running(self) -> bool:
        """Every host, switch and the fence listener of the lab runs: `up` then only confirms SSH (seconds)."""
        return (
            bool(self.load_state())
            and all(self.running_pid(h) is not None for h in self.topology.hosts)
            and all(owned_pid(self.switch_pidfile(n)) is not None for n in self.used_networks())
            and owned_pid(self.fence_pidfile) is not None
        )

    def _prepare(self, progress: Progress | None) -> dict[str, Any]:
        """Everything hosts need before they boot: image, key, accel, disks, switches; recorded in state."""
        image = self._image(progress)
        state = self.load_state()
        state.setdefault("hosts", {})
        state.update(lab=self.topology.lab.name, lab_dir=str(self.lab_dir), provider=self.name)
        if self.stack_name:
            state["stack"] = self.stack_name
        state["hardware"] = self.guest_hardware().to_dict()
        state["image"] = {
            "name": image.name,
            "recipe_hash": image.recipe_hash,
            "root_disk": str(image.root_disk),
            "kernel": str(image.kernel) if image.kernel else None,
            "initrd": str(image.initrd) if image.initrd else None,
            "root_device": image.root_device,
            "ssh_key": str(image.ssh_key) if image.ssh_key else None,
        }
        self._ensure_key(image.ssh_key)
        state["ssh_key"] = str(self.key_path)
        if "accel" not in state or self.forced_accel:
            accel = self._accel(image, progress)
            state["accel"], state["accel_reason"] = accel.name, accel.reason
        self.save_state(state)
        state["disk_cache"] = self._ensure_disks(progress)
        state["disks"] = {
            d.name: {"path": str(self.disk_path(d.name)), "size_mb": d.size_mb, "serial": d.serial}
            for d in self.topology.disks.values()
        }
        self.save_state(state)
        state["networks"] = {}
        for network in self.used_networks():
            pid = self._ensure_switch(network)
            state["networks"][network] = {
                "socket": str(self.switch_dir(network)),
                "mgmt": str(self.switch_mgmt(network)),
                "pid": pid,
            }
            self.save_state(state)
        return state

    def _image(self, progress: Progress | None) -> Any:
        """The image given, else the one the stack's hardware needs: the Debian image (built if needed) or
        the FreeBSD 10.3 image `bst image freebsd` prepared; a kernel-booted image for a disk-booting stack is
        refused (the reverse, in qemu_command)."""
        wanted = self.guest_hardware().image
        if self.image is None and wanted == "debian":
            from lab.images.debian import ensure_debian_image

            self.image = ensure_debian_image(cache_dir=self.cache_dir, progress=progress)
        elif self.image is None:
            from lab.images.freebsd import current_freebsd_image

            self.image = current_freebsd_image(self.cache_dir)
            if self.image is None:
                raise LabError("no prepared FreeBSD 10.3 image: run `bst image freebsd FILE` (or `--download`) "
                               "first")
        if self.guest_hardware().boots_from_disk and self.image.kernel is not None:
            raise LabError(f"image {self.image.name} boots a kernel the provider gives, but this stack's guests "
                           f"({wanted}) boot their own loader; choose the stack the image is for (--stack)")
        return self.image

    def _accel(self, image: Any, progress: Progress | None) -> Accel:
        if self.forced_accel:
            return Accel(self.forced_accel, f"accel {self.forced_accel} was asked for")
        from lab.images import default_cache_dir

        cache_dir = self.cache_dir or default_cache_dir()
        task = progress.add_task("probing KVM", total=None) if progress else None
        try:
            return choose_accel(image.kernel or probe_kernel(cache_dir), cache_dir, self.qemu)
        finally:
            if progress and task is not None:
                progress.remove_task(task)

    def _ensure_key(self, image_key: Path | None = None) -> None:
        """The lab's key: a copy of the image's own key (mode 600) when it has one, else a fresh key."""
        if image_key is not None:
            self._copy_image_key(image_key)
            return
        if self.key_path.exists() and self.key_path.with_suffix(".pub").exists():
            return
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in (self.key_path, self.key_path.with_suffix(".pub")):
            remove_inside(self.lab_dir, stale)
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"beast-lab {self.topology.lab.name}",
                "-f",
                str(self.key_path),
            ],
            "create the lab's SSH key",
        )

    def _copy_image_key(self, image_key: Path) -> None:
        try:
            private = image_key.read_bytes()
        except OSError as err:
            raise LabError(f"cannot read the image's SSH key {image_key} ({err.strerror}); prepare the image "
                           "again with `bst image freebsd`") from None
        public_source = image_key.with_name(image_key.name + ".pub")
        self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.key_path.exists() and self.key_path.read_bytes() == private and self.key_path.with_suffix(
                ".pub").exists():
            return
        for stale in (self.key_path, self.key_path.with_suffix(".pub")):
            remove_inside(self.lab_dir, stale)
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as key:
            key.write(private)
        public = self.key_path.with_suffix(".pub")
        if public_source.is_file():
            public.write_text(public_source.read_text().strip() + "\n")
        else:
            _run(["ssh-keygen", "-y", "-f", str(self.key_path)], "read the image key's public half", output=public)

    def _ensure_disks(self, progress: Progress | None) -> str:
        """Create missing shared disks, fully allocated; the cache mode their filesystem allows."""
        directory = self.lab_dir / "disks"
        directory.mkdir(parents=True, exist_ok=True)
        for disk in self.topology.disks.values():
            path = self.disk_path(disk.name)
            size = disk.size_mb * 1024 * 1024
            if path.exists():
                if path.stat().st_size != size:
                    raise LabError(
                        f"shared disk {path} has {path.stat().st_size} bytes but the topology says "
                        f"{disk.size_mb} MB; run `bst down` to recreate the lab's disks"
                    )
                continue
            tmp = path.with_suffix(".partial")
            with open(tmp, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
            tmp.replace(path)
        return DISK_CACHE_MODE if _supports_direct_io(directory) else "writeback"

    def _ensure_switch(self, network: str) -> int:
        pidfile = self.switch_pidfile(network)
        pid = owned_pid(pidfile)
        if pid is not None:
            return pid
        sock, mgmt = self.switch_dir(network), self.switch_mgmt(network)
        sock.parent.mkdir(parents=True, exist_ok=True)
        for stale in (sock, mgmt, pidfile):
            remove_inside(self.lab_dir, stale)
        _run(
            [VDE_SWITCH, "-sock", str(sock), "-mgmt", str(mgmt), "-daemon", "-pidfile", str(pidfile)],
            f"start the {network} switch",
            output=sock.with_name(f"{network}.log"),
        )
        deadline = time.monotonic() + 10
        while (pid := owned_pid(pidfile)) is None:
            if time.monotonic() > deadline:
                raise LabError(
                    f"vde_switch for {network} did not write {pidfile}; check `vde_switch -sock {sock}`"
                )
            time.sleep(0.05)
        return pid

    def _launch(
        self, host: str, state: dict[str, Any], progress: Progress | None, extra_args: list[str] | None = None
    ) -> None:
        """Start one host's qemu (daemonized) and record it; retries if its SSH port got taken.

        ``extra_args`` go after the usual command line (a snapshot restore adds ``-S -incoming ...``)."""
        paths = self.vm_paths(host)
        paths.dir.mkdir(parents=True, exist_ok=True)
        image = self.image
        recorded = state["hosts"].get(host, {})
        if paths.overlay.exists() and recorded.get("image_hash") not in (None, image.recipe_hash):
            raise LabError(
                f"{host} was created from guest image {recorded['image_hash'][:12]} but the image is now "
                f"{image.recipe_hash[:12]}; its disk holds the lab's state, so rebuild the lab: bst down && bst up"
            )
        if not paths.overlay.exists():
            _run(
                [
                    QEMU_IMG,
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    "qcow2",
                    "-b",
                    str(image.root_disk),
                    str(paths.overlay),
                ],
                f"create {host}'s root overlay",
            )
        taken = {h.get("ssh_port") for n, h in state["hosts"].items() if n != host}
        port = recorded.get("ssh_port")
        pubkey = self.key_path.with_suffix(".pub").read_text().strip()
        for attempt in range(LAUNCH_ATTEMPTS):
            if port is None or port in taken or not port_is_free(port):
                port = free_loopback_port(taken)
            argv = self.qemu_command(
                host, image, port, state["accel"], pubkey, state.get("disk_cache", "none")
            ) + list(extra_args or [])
            paths.pidfile.unlink(missing_ok=True)
            with open(paths.qemu_log, "wb") as log:
                launcher = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    cwd=self.lab_dir,
                )
            paths.launcher_pidfile.write_text(f"{launcher.pid}\n")
            try:
                code = launcher.wait(timeout=LAUNCH_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                stop_owned_process(launcher.pid, paths.pidfile)
                raise LabError(
                    f"qemu for {host} did not finish starting within {LAUNCH_TIMEOUT_SECONDS:.0f} s; "
                    f"see {paths.qemu_log}"
                ) from None
            paths.launcher_pidfile.unlink(missing_ok=True)
            output = paths.qemu_log.read_text(errors="replace")
            if code == 0:
                break
            if "host forwarding" in output and attempt + 1 < LAUNCH_ATTEMPTS:
                port = None
                continue
            errors = [line for line in output.splitlines() if "warning" not in line.lower()] or ["no output"]
            raise LabError(f"qemu for {host} failed to start: {errors[-1]} (full output in {paths.qemu_log})")
        pid = self._wait_pidfile(host)
        state["hosts"][host] = {
            "pid": pid,
            "ssh_port": port,
            "accel": state["accel"],
            "hostid": self.hostids()[host],
            "macs": self.nic_macs(host),
            "image_hash": image.recipe_hash,
            "started_at": time.time(),
            "pidfile": str(paths.pidfile),
            "qmp": str(paths.qmp),
            "console_log": str(paths.console_log),
            "overlay": str(paths.overlay),
        }
        self.save_state(state)

    def _wait_pidfile(self, host: str) -> int:
        paths = self.vm_paths(host)
        deadline = time.monotonic() + 10
        while (pid := owned_pid(paths.pidfile)) is None:
            if time.monotonic() > deadline:
                raise LabError(
                    f"qemu for {host} started but is not running; see {paths.qemu_log} "
                    f"and {paths.console_log}"
                )
            time.sleep(0.05)
        return pid



def free_loopback_port(exclude: set[int | None] | None = None) -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    exclude = exclude or set()
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise LabError("no free TCP port on 127.0.0.1; close some programs and retry")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



def _supports_direct_io(directory: Path) -> bool:
    """tmpfs and some overlay filesystems refuse O_DIRECT, which cache=none needs."""
    probe = directory / ".direct-io-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    except OSError as err:
        if err.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink(missing_ok=True)
    return True


def _run(argv: list[str], purpose: str, timeout: float = 120, output: Path | None = None) -> None:
    """Run a host tool to completion; ``output``: a file for what it prints (daemons keep pipes open)."""
    try:
        if output is None:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
            )
            text = done.stderr.strip() or done.stdout.strip()
        else:
            with open(output, "wb") as log:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=timeout)
            text = output.read_text(errors="replace").strip()
    except subprocess.TimeoutExpired:
        raise LabError(f"could not {purpose}: `{argv[0]}` did not finish within {timeout} s") from None
    if done.returncode != 0:
        last = (text or "no output").splitlines()[-1]
        raise LabError(f"could not {purpose}: {argv[0]} exited {done.returncode}: {last}")

