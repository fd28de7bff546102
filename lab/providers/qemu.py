"""The lab in QEMU VMs on this machine: shared raw disks, VDE switches, a loopback-only management NIC.

Every file lives in the lab directory (``<project or cwd>/.lab/<lab name>/`` by default)::

    lock                    flock held by up/down/start (the kernel drops it if the holder dies)
    state.json              hosts, pids, ports, accel, image hash: what `status`/`down`/`ssh` read
    ssh/id_ed25519{,.pub}   the lab's root key, passed to guests on the kernel command line
    disks/<disk>.raw        shared disks, fully allocated, attached to both controllers
    net/<network>/          a vde_switch's socket directory; net/<network>.{mgmt,pid} beside it
    vm/<host>/overlay.qcow2 the host's root disk over the cached base image
    vm/<host>/qemu.pid      written by qemu; launcher.pid: the qemu process we started (pre-daemonize)
    vm/<host>/qmp.sock, console.sock, console.log, qemu.log (what qemu printed while starting)
    snapshots/<name>/       whole-lab snapshots (lab.providers.snapshot); kept by `down`

Shared disks use ``cache=none`` (O_DIRECT): a write the guest sees completed is in the shared file
itself, not in one process's view of the host page cache, so the peer controller's reads and the
paper's abrupt power-off never miss it. Flushes stay the guest's business, as with a real disk's write
cache, which ZFS handles; ``directsync`` would add an fdatasync to every write (protection against a
host crash, which no drill simulates) and slow the ZIL further under TCG.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress

from lab.errors import LabError
from lab.labdir import (
    check_socket_path,
    checked_lab_dir,
    default_lab_dir,
    inside,
    lab_lock,
    owned_pid,
    process_cmdline,
    read_pidfile,
    remove_inside,
    stop_owned_process,
    wait_for_exit,
)
from lab.providers.base import HostState, HostStatus, Provider, SshTarget
from lab.providers.qmp import QmpClient, QmpError, qmp_command
from lab.providers.snapshot import (
    PARTIAL_MARK,
    SNAPSHOTS_DIR,
    Manifest,
    SnapshotError,
    SnapshotUnusable,
    argv_difference,
    check_name,
    copy_file,
    incoming_args,
    mismatch,
    missing_files,
    normalise_argv,
    read_manifest,
    snapshot_names,
    topology_hash,
    utc_now,
    write_manifest,
)
from lab.topology import Bus, Disk, Host, Role, Topology

STATE_VERSION = 1
QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
VDE_SWITCH = "vde_switch"
MANAGEMENT_ADDRESS = "10.0.2.15/24"
"""The guest's address on QEMU's user network (slirp's default guest address)."""
AHCI_PORTS = 6
LAUNCH_TIMEOUT_SECONDS = 120.0
LAUNCH_ATTEMPTS = 3
KVM_PROBE_SECONDS = 12.0
SSH_POLL_SECONDS = 2.0
ACCEL_ENV = "BEAST_LAB_ACCEL"
DISK_CACHE_MODE = "none"
KERNEL_EXTRA_ARGS = "net.ifnames=0"
OWNED_NAMES = ("state.json", "ssh", "disks", "net", "vm")
"""What `down` removes from the lab directory: only names this provider creates (snapshots stay)."""
SNAPSHOT_FD_NAME = "beast-snapshot"
MIGRATE_BANDWIDTH = 8 * 1024**3
"""Bytes/s for saving a paused VM's state: QEMU's default limit (32 MiB/s) would make it take minutes."""
SNAPSHOT_SAVE_TIMEOUT_SECONDS = 600.0
SNAPSHOT_LOAD_TIMEOUT_SECONDS = 600.0
CLOCK_STEP_SECONDS = 1.0
"""A guest whose wall clock is off by more than this after a snapshot is set to the host's time."""
QEMU_ID = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")
"""What qemu accepts as an object id (util/id.c: id_wellformed); a network name is its NIC's netdev id."""


# --- identities ----------------------------------------------------------------------------------


def host_ids(lab_name: str, hosts: list[str]) -> dict[str, str]:
    """A distinct, deterministic 8-hex hostid per host (ZFS's multihost check needs them distinct)."""
    ids: dict[str, str] = {}
    for host in hosts:
        salt = 0
        while True:
            digest = hashlib.sha256(f"beast-lab:{lab_name}:{host}:{salt}".encode()).hexdigest()[:8]
            if digest not in ids.values() and digest not in ("00000000", "ffffffff"):
                break
            salt += 1
        ids[host] = digest
    return ids


def mac_address(lab_name: str, host_index: int, nic_index: int) -> str:
    """``52:54:00:<lab>:<host>:<nic>``: QEMU's local prefix, stable across runs, distinct in a lab."""
    lab_byte = hashlib.sha256(lab_name.encode()).digest()[0]
    return f"52:54:00:{lab_byte:02x}:{host_index + 1:02x}:{nic_index:02x}"


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


# --- the accelerator -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Accel:
    name: str
    """``kvm`` or ``tcg``."""
    reason: str

    @property
    def qemu_args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi"]


def probe_kvm(kernel: Path, qemu: str = QEMU, timeout: float = KVM_PROBE_SECONDS) -> tuple[bool, str]:
    """Whether a Linux kernel really runs under KVM here: boot it without a root disk until it panics.

    Some hosts have a /dev/kvm on which firmware runs but ordinary kernels hang or die with "KVM
    internal error ... emulation failure", so opening /dev/kvm proves nothing.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    with tempfile.TemporaryDirectory(prefix="beast-kvm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        argv = [
            qemu,
            "-accel",
            "kvm",
            "-cpu",
            "host",
            "-machine",
            "pc",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            str(kernel),
            "-append",
            "console=ttyS0 panic=-1 loglevel=4",
            "-serial",
            f"file:{console}",
        ]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"a Linux kernel did not get to its first panic within {timeout:.0f} s under KVM"
        text = console.read_text(errors="replace") if console.exists() else ""
        errors = done.stderr.decode(errors="replace")
        if "KVM internal error" in errors or "emulation failure" in errors:
            return False, "KVM reports an internal error (emulation failure) running a Linux kernel"
        if done.returncode == 0 and "Kernel panic" in text:
            return True, "a Linux kernel boots under KVM"
        last = (errors.strip().splitlines() or ["no output"])[-1]
        return False, f"qemu -accel kvm failed: {last}"


def choose_accel(kernel: Path | None, cache_dir: Path | None, qemu: str = QEMU) -> Accel:
    """KVM when it really runs a kernel here, else TCG; the probe result is cached per host boot."""
    forced = os.environ.get(ACCEL_ENV, "").strip()
    if forced in ("kvm", "tcg"):
        return Accel(forced, f"{ACCEL_ENV}={forced} is set")
    if kernel is None:
        return Accel("tcg", "no kernel to probe KVM with")
    key = {"boot_id": _boot_id(), "qemu": _qemu_version(qemu), "kernel": str(kernel)}
    cache = (cache_dir / "kvm-probe.json") if cache_dir else None
    if cache is not None:
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                return _accel_from_probe(cached["ok"], cached["reason"] + " (probed earlier this boot)")
        except (OSError, ValueError, KeyError):
            pass
    ok, reason = probe_kvm(kernel, qemu)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"key": key, "ok": ok, "reason": reason}))
        except OSError:
            pass
    return _accel_from_probe(ok, reason)


def _accel_from_probe(ok: bool, reason: str) -> Accel:
    return Accel("kvm", reason) if ok else Accel("tcg", f"TCG because {reason}")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _qemu_version(qemu: str) -> str:
    try:
        return subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10).stdout.split(
            "\n"
        )[0]
    except (OSError, subprocess.TimeoutExpired):
        return ""


# --- the provider --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmPaths:
    dir: Path
    overlay: Path
    pidfile: Path
    launcher_pidfile: Path
    qmp: Path
    console_socket: Path
    console_log: Path
    qemu_log: Path


class QemuProvider(Provider):
    """Runs a topology's hosts as QEMU VMs; state lives in the lab directory so any process can manage it."""

    name = "qemu"

    def __init__(
        self,
        topology: Topology,
        lab_dir: Path | str | None = None,
        image: Any = None,
        cache_dir: Path | str | None = None,
        boot_timeout_s: float | None = None,
        accel: str | None = None,
        qemu: str = QEMU,
    ):
        """``image``: a lab.images.GuestImage to boot (default: the cached Debian image, built if needed).

        ``accel``: ``kvm`` or ``tcg`` to skip the probe. ``boot_timeout_s`` overrides lab.boot_timeout_s.
        """
        super().__init__(topology)
        self.lab_dir = checked_lab_dir(lab_dir or default_lab_dir(topology.lab.name))
        self.image = image
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.boot_timeout_s = float(
            boot_timeout_s if boot_timeout_s is not None else topology.lab.boot_timeout_s
        )
        self.forced_accel = accel
        self.qemu = qemu

    # paths

    def path(self, *parts: str) -> Path:
        """A path in the lab directory, checked to stay inside it (lab.labdir.inside)."""
        return inside(self.lab_dir, self.lab_dir.joinpath(*parts))

    @property
    def state_path(self) -> Path:
        return self.path("state.json")

    @property
    def key_path(self) -> Path:
        return self.path("ssh", "id_ed25519")

    def disk_path(self, disk: str) -> Path:
        return self.path("disks", f"{disk}.raw")

    def switch_dir(self, network: str) -> Path:
        if not QEMU_ID.fullmatch(network):
            raise LabError(f"network name {network!r} cannot name a qemu netdev; use letters, digits, '.', '_' "
                           "or '-', starting with a letter")
        return self.path("net", network)

    def switch_mgmt(self, network: str) -> Path:
        return self.switch_dir(network).with_name(f"{network}.mgmt")

    def switch_pidfile(self, network: str) -> Path:
        return self.switch_dir(network).with_name(f"{network}.pid")

    def vm_paths(self, host: str) -> VmPaths:
        d = self.path("vm", host)
        return VmPaths(
            dir=d,
            overlay=d / "overlay.qcow2",
            pidfile=d / "qemu.pid",
            launcher_pidfile=d / "launcher.pid",
            qmp=d / "qmp.sock",
            console_socket=d / "console.sock",
            console_log=d / "console.log",
            qemu_log=d / "qemu.log",
        )

    # identities

    def hostids(self) -> dict[str, str]:
        return host_ids(self.topology.lab.name, list(self.topology.hosts))

    def nic_macs(self, host: str) -> dict[str, str]:
        """``management`` and each network the host is on, in NIC order, with their MACs."""
        index = list(self.topology.hosts).index(host)
        networks = ["management", *self.topology.hosts[host].addresses]
        return {net: mac_address(self.topology.lab.name, index, i) for i, net in enumerate(networks)}

    def identity_interfaces(self, host: Host) -> list[tuple[str, str]]:
        macs = self.nic_macs(host.name)
        interfaces = [(macs["management"], MANAGEMENT_ADDRESS)]
        for network, address in host.addresses.items():
            prefix = self.topology.networks[network].cidr.prefixlen
            interfaces.append((macs[network], f"{address}/{prefix}"))
        return interfaces

    def shared_disks(self, host: Host) -> list[Disk]:
        return list(self.topology.disks.values()) if host.role is Role.CONTROLLER else []

    # the command line

    def qemu_command(
        self,
        host_name: str,
        image: Any,
        ssh_port: int,
        accel: str,
        ssh_pubkey: str,
        disk_cache: str = DISK_CACHE_MODE,
    ) -> list[str]:
        """The full qemu argv for one host (pure: reads nothing but the topology and its arguments)."""
        host = self.topology.hosts[host_name]
        paths = self.vm_paths(host_name)
        macs = self.nic_macs(host_name)
        argv = [
            self.qemu,
            "-name",
            f"{host_name},debug-threads=on",
            *Accel(accel, "").qemu_args,
            "-machine",
            "q35",
            "-smp",
            str(host.cpus),
            "-m",
            str(host.memory_mb),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-daemonize",
            "-pidfile",
            str(paths.pidfile),
            "-qmp",
            f"unix:{paths.qmp},server=on,wait=off",
            "-chardev",
            f"socket,id=console,path={paths.console_socket},server=on,wait=off,"
            f"logfile={paths.console_log},logappend=on",
            "-serial",
            "chardev:console",
            "-device",
            "virtio-rng-pci",
        ]
        if image.kernel is not None:
            argv += ["-kernel", str(image.kernel)]
            if image.initrd is not None:
                argv += ["-initrd", str(image.initrd)]
            argv += ["-append", self.kernel_cmdline(host, ssh_pubkey, image.root_device)]
        argv += [
            "-drive",
            f"if=none,id=root,file={paths.overlay},format=qcow2,cache=writeback",
            "-device",
            "virtio-blk-pci,drive=root",
        ]
        argv += self.disk_args(host, disk_cache)
        argv += [
            "-netdev",
            f"user,id=management,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device",
            f"virtio-net-pci,netdev=management,mac={macs['management']}",
        ]
        for network in host.addresses:
            argv += [
                "-netdev",
                f"vde,id={network},sock={self.switch_dir(network)}",
                "-device",
                f"{lab_nic_model(image)},netdev={network},mac={macs[network]}",
            ]
        return argv

    def disk_args(self, host: Host, disk_cache: str) -> list[str]:
        """Shared disks: SATA ones on ICH9 AHCI ports, SAS ones on virtio-scsi targets, in declared order."""
        disks = self.shared_disks(host)
        sata = [d for d in disks if d.bus is Bus.SATA]
        sas = [d for d in disks if d.bus is Bus.SAS]
        argv: list[str] = []
        for controller in range((len(sata) + AHCI_PORTS - 1) // AHCI_PORTS):
            argv += ["-device", f"ich9-ahci,id=ahci{controller}"]
        if sas:
            argv += ["-device", "virtio-scsi-pci,id=scsi0"]
        for disk in disks:
            argv += [
                "-drive",
                f"if=none,id={disk.name},file={self.disk_path(disk.name)},format=raw,"
                f"cache={disk_cache},file.locking=off",
            ]
        for port, disk in enumerate(sata):
            bus = f"ahci{port // AHCI_PORTS}.{port % AHCI_PORTS}"
            argv += [
                "-device",
                f"ide-hd,bus={bus},drive={disk.name},serial={disk.serial},share-rw=on" + _rotation(disk),
            ]
        for target, disk in enumerate(sas):
            argv += [
                "-device",
                f"scsi-hd,bus=scsi0.0,channel=0,scsi-id={target},lun=0,drive={disk.name},"
                f"serial={disk.serial},share-rw=on" + _rotation(disk),
            ]
        return argv

    def kernel_cmdline(self, host: Host, ssh_pubkey: str, root_device: str = "/dev/vda") -> str:
        """The image's identity command line plus ``net.ifnames=0``.

        Without it udev renames eth0 to enp0sN while the identity service configures the NIC it found by
        MAC, and the address is lost ("Cannot find device eth0"); guests find NICs by MAC, never by name.
        """
        from lab.images.debian import kernel_cmdline

        identity = kernel_cmdline(
            host.name,
            self.hostids()[host.name],
            self.identity_interfaces(host),
            ssh_pubkey,
            root_device=root_device,
        )
        return f"{identity} {KERNEL_EXTRA_ARGS}"

    # state

    def load_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise LabError(f"{self.state_path} is not valid JSON; run `bst down` to reset the lab") from None
        return state if state.get("version") == STATE_VERSION else {}

    def save_state(self, state: dict[str, Any]) -> None:
        state["version"] = STATE_VERSION
        state["updated_at"] = time.time()
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_path)

    # Provider

    def up(self, progress: Progress | None = None) -> None:
        from lab.providers import require_tools

        require_tools("qemu")
        self.check_socket_paths()
        with lab_lock(self.lab_dir, "up"):
            if not self._all_running():
                state = self._prepare(progress)
                for host in self.topology.hosts:
                    if self.running_pid(host) is None:
                        self._launch(host, state, progress)
            self._wait_all(list(self.topology.hosts), progress)

    def down(self) -> None:
        if not self.lab_dir.exists():
            return
        with lab_lock(self.lab_dir, "down"):
            self.stop_all_processes()
            for name in OWNED_NAMES:
                remove_inside(self.lab_dir, self.lab_dir / name)

    def stop_all_processes(self) -> None:
        """Every qemu and vde_switch this lab started, found by pid file, checked by cmdline (the launcher,
        qemu before it daemonizes, has the same ``-pidfile`` argument as the qemu it becomes)."""
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

    def status(self) -> list[HostStatus]:
        state = self.load_state()
        result = []
        for name in self.topology.hosts:
            recorded = state.get("hosts", {}).get(name, {})
            paths = self.vm_paths(name)
            pid = self.running_pid(name)
            port = recorded.get("ssh_port")
            accel = recorded.get("accel")
            if pid is None:
                created = paths.overlay.exists()
                result.append(
                    HostStatus(
                        name,
                        HostState.STOPPED if created else HostState.ABSENT,
                        None,
                        None,
                        accel,
                        f"console log {paths.console_log}" if created else "not created",
                    )
                )
                continue
            try:
                run_state = qmp_command(paths.qmp, "query-status")
                qemu_status = run_state.get("status", "")
                state_name = HostState.RUNNING if run_state.get("running") else HostState.PAUSED
                detail = f"ssh 127.0.0.1:{port}" if qemu_status == "running" else f"qemu status {qemu_status}"
            except QmpError as err:
                state_name, detail = HostState.RUNNING, f"monitor unreachable: {err}"
            result.append(HostStatus(name, state_name, pid, port, accel, detail))
        return result

    def start(self, host: str, progress: Progress | None = None) -> None:
        self.check_host(host)
        with lab_lock(self.lab_dir, f"start {host}"):
            if self.running_pid(host) is not None:
                return
            state = self._prepare(progress)
            self._launch(host, state, progress)
            self._wait_all([host], progress)

    def power_off(self, host: str) -> None:
        self.check_host(host)
        pid = self.running_pid(host)
        if pid is None:
            return
        try:
            with QmpClient(self.vm_paths(host).qmp) as qmp:
                qmp.quit()
        except QmpError:
            pass
        pidfile = self.vm_paths(host).pidfile
        if not wait_for_exit(pid, pidfile, 5.0):
            stop_owned_process(pid, pidfile, grace=0.5)

    def pause(self, host: str) -> None:
        self._monitor(host, "stop")

    def resume(self, host: str) -> None:
        self._monitor(host, "cont")

    def set_link(self, host: str, network: str, up: bool) -> None:
        """QMP ``set_link`` on the host's NIC for that network (its netdev is named after the network)."""
        self.check_link(host, network)
        if self.running_pid(host) is None:
            raise LabError(f"{host} is not running; start it with `bst start {host}`")
        qmp_command(self.vm_paths(host).qmp, "set_link", {"name": network, "up": up})

    def reset(self, host: str) -> None:
        """Press the reset button: the guest reboots without shutting down."""
        self._monitor(host, "system_reset")

    def ssh_target(self, host: str) -> SshTarget:
        self.check_host(host)
        port = self.load_state().get("hosts", {}).get(host, {}).get("ssh_port")
        if port is None or self.running_pid(host) is None:
            raise LabError(f"{host} is not running; start the lab with `bst up` (or `bst start {host}`)")
        return SshTarget(port=port, key_path=self.key_path, name=host)

    def console_log(self, host: str) -> Path:
        self.check_host(host)
        return self.vm_paths(host).console_log

    def console_socket(self, host: str) -> Path:
        """The serial console as a unix socket, for an interactive session (e.g. ``socat -,raw UNIX:...``)."""
        self.check_host(host)
        return self.vm_paths(host).console_socket

    def wait_for_ssh(self, host: str, timeout: float | None = None) -> None:
        self.check_host(host)
        self._wait_all([host], None, timeout)

    # snapshots

    def snapshot_dir(self, name: str) -> Path:
        return self.path(SNAPSHOTS_DIR, check_name(name))

    def snapshots(self) -> list[Manifest]:
        """Complete, readable snapshots of this lab, by name."""
        root = self.lab_dir / SNAPSHOTS_DIR
        found = []
        for name in snapshot_names(root):
            try:
                found.append(read_manifest(root / name))
            except SnapshotUnusable:
                continue
        return found

    def snapshot_delete(self, name: str) -> None:
        directory = self.snapshot_dir(name)
        if not directory.is_dir():
            raise LabError(f"no snapshot {name} in lab {self.topology.lab.name} ({directory.parent})")
        with lab_lock(self.lab_dir, f"snapshot delete {name}"):
            trash = directory.with_name(f".{name}.deleted-{os.getpid()}")
            directory.rename(trash)
            remove_inside(self.lab_dir, trash)

    def snapshot_save(self, name: str, progress: Progress | None = None, replace: bool = False) -> Manifest:
        """Pause every VM, save each one's devices and RAM (QMP ``migrate`` to a file descriptor), copy
        every overlay and shared disk, write the manifest, then continue every VM.

        The VMs are paused together (one QMP session each, opened first, then ``stop`` in a row), so
        the disks and the RAM states are one consistent moment of the whole lab. Any failure cancels
        the migrations, removes the partial snapshot and continues the VMs: the lab is never left
        paused. The state goes to a file descriptor we open and pass over QMP rather than to
        ``exec:cat > FILE``: when a migration ends QEMU closes the pipe and kills its helper within
        milliseconds, which may cut the last buffer of the file.
        """
        check_name(name)
        started = time.monotonic()
        hosts = list(self.topology.hosts)
        if not self.state_path.exists():
            raise LabError(
                f"lab {self.topology.lab.name} is not up ({self.lab_dir} has no state); "
                "a snapshot saves a running, provisioned lab: bst up, provision, then save"
            )
        with lab_lock(self.lab_dir, f"snapshot save {name}"):
            state = self.load_state()
            down = [h for h in hosts if self.running_pid(h) is None]
            if not state or down:
                raise LabError(
                    f"lab {self.topology.lab.name} is not running ({', '.join(down) or 'no VMs'} down); "
                    "a snapshot saves a running, provisioned lab: bst up, provision, then save"
                )
            final = self.snapshot_dir(name)
            if final.exists() and not replace:
                raise LabError(
                    f"snapshot {name} already exists in {final.parent}; use another name, or replace it: "
                    f"bst snapshot save {name} --replace"
                )
            partial = final.with_name(f".{name}{PARTIAL_MARK}{os.getpid()}")
            remove_inside(self.lab_dir, partial)
            (partial / "disks").mkdir(parents=True)
            (partial / "ssh").mkdir(mode=0o700)
            argv = {h: normalise_argv(process_cmdline(self.running_pid(h)) or [], self.lab_dir) for h in hosts}
            timings: dict[str, float] = {}
            clients: dict[str, QmpClient] = {}
            stopped: list[str] = []
            was_running: dict[str, bool] = {}
            failed = True
            try:
                for host in hosts:
                    client = QmpClient(self.vm_paths(host).qmp, timeout=30)
                    client.connect()
                    clients[host] = client
                for host in hosts:
                    was_running[host] = bool(clients[host].execute("query-status").get("running"))
                stop_started = time.monotonic()
                for host in hosts:
                    clients[host].execute("stop")
                    stopped.append(host)
                timings["stop_spread_s"] = round(time.monotonic() - stop_started, 3)
                phase = time.monotonic()
                for host in hosts:
                    state_file = inside(self.lab_dir, partial / f"{host}.state")
                    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                    try:
                        clients[host].send_fd(SNAPSHOT_FD_NAME, fd)
                    finally:
                        os.close(fd)
                    clients[host].execute("migrate-set-parameters", {"max-bandwidth": MIGRATE_BANDWIDTH})
                    clients[host].execute("migrate", {"uri": f"fd:{SNAPSHOT_FD_NAME}"})
                self._wait_migrations(clients, progress)
                timings["state_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                copies = [(self.vm_paths(h).overlay, partial / f"{h}.qcow2", False) for h in hosts]
                copies += [(self.disk_path(d), partial / "disks" / f"{d}.raw", True) for d in self.topology.disks]
                keys = (self.key_path, self.key_path.with_suffix(".pub"))
                copies += [(key, partial / "ssh" / key.name, False) for key in keys]
                self._copy_files(copies, progress, f"snapshot {name}: copying disks")
                timings["copy_s"] = round(time.monotonic() - phase, 2)
                image = state.get("image", {})
                manifest = Manifest(
                    name=name,
                    created_utc=utc_now(),
                    provider=self.name,
                    lab=self.topology.lab.name,
                    lab_dir=str(self.lab_dir),
                    topology_source=self.topology.source,
                    topology_hash=topology_hash(self.topology),
                    image_name=str(image.get("name", "")),
                    image_hash=str(image.get("recipe_hash", "")),
                    accel=str(state.get("accel", "")),
                    disk_cache=str(state.get("disk_cache", "none")),
                    hosts=hosts,
                    files={
                        str(p.relative_to(partial)): p.stat().st_size
                        for p in sorted(partial.rglob("*"))
                        if p.is_file()
                    },
                    argv=argv,
                    timings=timings,
                )
                timings["paused_s"] = round(time.monotonic() - stop_started, 2)
                write_manifest(partial, manifest)
                old = final.with_name(f".{name}.replaced-{os.getpid()}")
                if final.exists():
                    final.rename(old)
                partial.rename(final)
                remove_inside(self.lab_dir, old)
                failed = False
            finally:
                if failed:
                    for host in stopped:
                        try:
                            if clients[host].execute("query-migrate").get("status") in ("active", "setup"):
                                clients[host].execute("migrate_cancel")
                        except QmpError:
                            pass
                    remove_inside(self.lab_dir, partial)
                problems = []
                for host in stopped:
                    if was_running.get(host, True):
                        try:
                            clients[host].execute("cont")
                        except QmpError as err:
                            problems.append(f"{host}: {err}")
                for client in clients.values():
                    client.close()
                if problems and not failed:
                    raise SnapshotError(
                        f"snapshot {name} was saved but some VMs did not continue ({'; '.join(problems)}); "
                        "try bst resume HOST"
                    )
        timings["clock_offset_s"] = self._sync_clocks(hosts)  # type: ignore[assignment]
        timings["total_s"] = round(time.monotonic() - started, 2)
        return manifest

    def snapshot_restore(self, name: str, progress: Progress | None = None) -> dict[str, Any]:
        """Stop this lab's VMs (by pid), copy the snapshot's disks back, start each qemu with its usual
        command line plus ``-S -incoming "exec:cat STATE"``, continue all of them together once every
        state is loaded, wait for SSH, and set guest clocks that fell behind to the host's time.

        The VDE switches stay up. Works on a lab that is down too (snapshots survive `bst down`)."""
        check_name(name)
        started = time.monotonic()
        hosts = list(self.topology.hosts)
        directory = self.snapshot_dir(name)
        if not directory.is_dir():
            known = snapshot_names(directory.parent)
            hint = f"snapshots here: {', '.join(known)}" if known else f"save one first: bst snapshot save {name}"
            raise SnapshotUnusable(f"no snapshot {name} in lab {self.topology.lab.name} ({directory.parent}); {hint}")
        manifest = read_manifest(directory)
        image = self._image(progress)
        problem = mismatch(manifest, self.topology, image.recipe_hash, self.name)
        if problem:
            raise SnapshotUnusable(problem)
        bad = missing_files(directory, manifest)
        if bad:
            raise SnapshotUnusable(
                f"snapshot {name} is incomplete ({bad[0]} is missing or has another size); "
                f"delete it (bst snapshot delete {name}) and save it again"
            )
        pubkey = (directory / "ssh" / "id_ed25519.pub").read_text().strip()
        for host in hosts:
            now = normalise_argv(
                self.qemu_command(host, image, 0, manifest.accel, pubkey, manifest.disk_cache), self.lab_dir
            )
            difference = argv_difference(manifest.argv.get(host, []), now)
            if difference:
                raise SnapshotUnusable(
                    f"snapshot {name}: {host}'s qemu command line is not the one it was saved with "
                    f"({difference}); its state cannot be loaded: rebuild the lab and save it again"
                )
        timings: dict[str, Any] = {}
        with lab_lock(self.lab_dir, f"snapshot restore {name}"):
            try:
                phase = time.monotonic()
                for host in hosts:
                    self.power_off(host)
                timings["stop_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                self.key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                for key in (self.key_path, self.key_path.with_suffix(".pub")):
                    copy_file(directory / "ssh" / key.name, key, allocated=False)
                    key.chmod(0o600)
                state = self._prepare(progress)
                state["accel"], state["disk_cache"] = manifest.accel, manifest.disk_cache
                state["restored_from"] = {"snapshot": name, "created_utc": manifest.created_utc, "at": utc_now()}
                self.save_state(state)
                copies = [(directory / "disks" / f"{d}.raw", self.disk_path(d), True) for d in self.topology.disks]
                for host in hosts:
                    self.vm_paths(host).dir.mkdir(parents=True, exist_ok=True)
                    copies.append((directory / f"{host}.qcow2", self.vm_paths(host).overlay, False))
                self._copy_files(copies, progress, f"snapshot {name}: copying disks back")
                timings["copy_s"] = round(time.monotonic() - phase, 2)
                phase = time.monotonic()
                try:
                    for host in hosts:
                        self._launch(host, state, progress, extra_args=incoming_args(directory / f"{host}.state"))
                    self._wait_incoming(hosts, progress)
                    timings["load_s"] = round(time.monotonic() - phase, 2)
                    clients = {}
                    try:
                        for host in hosts:
                            clients[host] = QmpClient(self.vm_paths(host).qmp, timeout=30)
                            clients[host].connect()
                        for host in hosts:
                            clients[host].execute("cont")
                    finally:
                        for client in clients.values():
                            client.close()
                except BaseException:
                    for host in hosts:
                        self.power_off(host)
                    raise
                phase = time.monotonic()
                self._wait_all(hosts, progress)
                timings["ssh_s"] = round(time.monotonic() - phase, 2)
            except SnapshotError:
                raise
            except LabError as error:
                raise SnapshotError(
                    f"restoring snapshot {name} failed: {error}; restore it again, "
                    "or rebuild the lab (bst down, bst up)"
                ) from error
        timings["clock_offset_s"] = self._sync_clocks(hosts)
        timings["total_s"] = round(time.monotonic() - started, 2)
        return timings

    def _wait_migrations(self, clients: dict[str, QmpClient], progress: Progress | None) -> None:
        tasks = ({h: progress.add_task(f"{escape(h)}: saving RAM and devices", total=None) for h in clients}
                 if progress else {})

        def saved(host: str) -> bool:
            info = clients[host].execute("query-migrate")
            status = info.get("status")
            if status in ("failed", "cancelled", None):
                reason = info.get("error-desc") or status or "no migration"
                raise SnapshotError(f"saving {host}'s state failed: {reason}")
            if progress:
                ram = info.get("ram", {})
                done = status == "completed"
                progress.update(tasks[host], description=f"{escape(host)}: state saved" if done else None,
                                total=1 if done else ram.get("total") or None,
                                completed=1 if done else ram.get("transferred", 0))
            return status == "completed"

        try:
            _poll_each(clients, saved, SNAPSHOT_SAVE_TIMEOUT_SECONDS,
                       lambda pending: f"saving the state of {', '.join(pending)} did not finish within "
                                       f"{SNAPSHOT_SAVE_TIMEOUT_SECONDS:.0f} s")
        finally:
            for task in tasks.values():
                progress.remove_task(task)  # type: ignore[union-attr]

    def _wait_incoming(self, hosts: list[str], progress: Progress | None) -> None:
        """Until every restored qemu has loaded its state and waits paused (QMP status ``paused``)."""
        task = progress.add_task("loading RAM and devices", total=len(hosts)) if progress else None

        def loaded(host: str) -> bool:
            paths = self.vm_paths(host)
            if self.running_pid(host) is None:
                raise SnapshotError(
                    f"{host}'s qemu exited while loading the snapshot state (it does not fit this qemu "
                    f"or command line); see {paths.qemu_log}"
                )
            try:
                status = qmp_command(paths.qmp, "query-status").get("status")
            except QmpError:
                status = None
            if status not in (None, "inmigrate", "prelaunch", "paused"):
                raise SnapshotError(f"{host} is {status} after loading its state, not paused")
            if status == "paused" and progress and task is not None:
                progress.advance(task)
            return status == "paused"

        try:
            _poll_each(hosts, loaded, SNAPSHOT_LOAD_TIMEOUT_SECONDS,
                       lambda pending: f"{', '.join(pending)} did not load the snapshot state within "
                                       f"{SNAPSHOT_LOAD_TIMEOUT_SECONDS:.0f} s")
        finally:
            if progress and task is not None:
                progress.remove_task(task)

    def _copy_files(self, copies: list[tuple[Path, Path, bool]], progress: Progress | None, what: str) -> None:
        total = sum(source.stat().st_size for source, _, _ in copies)
        task = progress.add_task(escape(what), total=total) if progress else None
        try:
            for source, target, allocated in copies:
                copy_file(source, inside(self.lab_dir, target), allocated)
                if progress and task is not None:
                    progress.advance(task, source.stat().st_size)
        finally:
            if progress and task is not None:
                progress.remove_task(task)

    def _sync_clocks(self, hosts: list[str]) -> dict[str, float | None]:
        """Each guest's wall clock behind the host's (seconds) as found; guests off by more than
        CLOCK_STEP_SECONDS are set to the host's time. A guest paused or restored keeps counting from
        where it stopped, so it is behind by the pause (or by the snapshot's age)."""
        from lab import remote

        def one(host: str) -> float | None:
            try:
                conn = remote.connect(self.ssh_target(host), timeout=30)
            except LabError:
                return None
            try:
                before = time.time()
                record = remote.run(conn, "date +%s.%N", timeout=15, host=host)
                after = time.time()
                try:
                    offset = (before + after) / 2 - float(record.stdout.strip())
                except ValueError:
                    return None
                if abs(offset) > CLOCK_STEP_SECONDS:
                    remote.run(conn, f"date -u -s @{time.time():.3f} >/dev/null", timeout=15, host=host)
                return round(offset, 2)
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
            return dict(zip(hosts, pool.map(one, hosts), strict=True))

    # internals

    def running_pid(self, host: str) -> int | None:
        return owned_pid(self.vm_paths(host).pidfile)

    def check_socket_paths(self) -> None:
        for host in self.topology.hosts:
            paths = self.vm_paths(host)
            check_socket_path(paths.qmp)
            check_socket_path(paths.console_socket)
        for network in self.topology.networks:
            check_socket_path(self.switch_dir(network) / ".00000-00000")
            check_socket_path(self.switch_mgmt(network))

    def _monitor(self, host: str, command: str) -> None:
        self.check_host(host)
        if self.running_pid(host) is None:
            raise LabError(f"{host} is not running; start it with `bst start {host}`")
        qmp_command(self.vm_paths(host).qmp, command)

    def _all_running(self) -> bool:
        """Every host and switch of the lab runs: `up` then only confirms SSH, which takes seconds."""
        return (
            bool(self.load_state())
            and all(self.running_pid(h) is not None for h in self.topology.hosts)
            and all(owned_pid(self.switch_pidfile(n)) is not None for n in self.used_networks())
        )

    def used_networks(self) -> list[str]:
        return [
            n for n in self.topology.networks if any(n in h.addresses for h in self.topology.hosts.values())
        ]

    def _prepare(self, progress: Progress | None) -> dict[str, Any]:
        """Everything hosts need before they boot: image, key, accel, disks, switches; recorded in state."""
        image = self._image(progress)
        state = self.load_state()
        state.setdefault("hosts", {})
        state.update(lab=self.topology.lab.name, lab_dir=str(self.lab_dir), provider=self.name)
        state["image"] = {
            "name": image.name,
            "recipe_hash": image.recipe_hash,
            "root_disk": str(image.root_disk),
            "kernel": str(image.kernel) if image.kernel else None,
            "initrd": str(image.initrd) if image.initrd else None,
            "root_device": image.root_device,
        }
        self._ensure_key()
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
        if self.image is None:
            from lab.images.debian import ensure_debian_image

            self.image = ensure_debian_image(cache_dir=self.cache_dir, progress=progress)
        return self.image

    def _accel(self, image: Any, progress: Progress | None) -> Accel:
        if self.forced_accel:
            return Accel(self.forced_accel, f"accel {self.forced_accel} was asked for")
        from lab.images import default_cache_dir

        task = progress.add_task("probing KVM", total=None) if progress else None
        try:
            return choose_accel(image.kernel, self.cache_dir or default_cache_dir(), self.qemu)
        finally:
            if progress and task is not None:
                progress.remove_task(task)

    def _ensure_key(self) -> None:
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

    def _wait_all(
        self,
        hosts: list[str],
        progress: Progress | None,
        timeout: float | None = None,
        stop_failed: bool = True,
    ) -> None:
        """Wait for SSH on ``hosts`` in parallel; on failure stop the failed hosts and say where to look."""
        if not hosts:
            return
        timeout = self.boot_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            futures = {h: pool.submit(self._wait_one, h, deadline, progress) for h in hosts}
        failures = {h: f.exception() for h, f in futures.items() if f.exception() is not None}
        if not failures:
            return
        if stop_failed:
            for host in failures:
                self.power_off(host)
        messages = "; ".join(str(err) for err in failures.values())
        suffix = " (stopped; `bst down` removes the rest of the lab)" if stop_failed else ""
        raise LabError(messages + suffix)

    def _wait_one(self, host: str, deadline: float, progress: Progress | None) -> None:
        from lab import remote

        task = progress.add_task(f"{escape(host)}: waiting for SSH", total=None) if progress else None
        paths = self.vm_paths(host)
        started = time.monotonic()
        try:
            while True:
                if self.running_pid(host) is None:
                    raise LabError(
                        f"{host}'s qemu exited while booting; see its console log {paths.console_log}"
                    )
                try:
                    target = self.ssh_target(host)
                    if (
                        remote.ssh_banner(target, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                        is None
                    ):
                        raise LabError("no SSH banner yet")
                    conn = remote.connect(target, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
                    try:
                        record = remote.run(conn, "true", timeout=15, host=host)
                    finally:
                        conn.close()
                    if record.ok:
                        return
                except LabError:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waited = time.monotonic() - started
                    port = self.load_state().get("hosts", {}).get(host, {}).get("ssh_port")
                    raise LabError(
                        f"{host} did not answer SSH on 127.0.0.1:{port} within {waited:.0f} s; "
                        f"see its console log {paths.console_log}"
                    ) from None
                if progress and task is not None:
                    progress.update(
                        task, description=f"{escape(host)}: waiting for SSH ({time.monotonic() - started:.0f} s)"
                    )
                time.sleep(min(SSH_POLL_SECONDS, max(0.0, remaining)))
        finally:
            if progress and task is not None:
                progress.remove_task(task)


def _poll_each(hosts: Iterable[str], done: Callable[[str], bool], timeout_s: float,
               timeout_message: Callable[[list[str]], str]) -> None:
    """Asks ``done(host)`` of every host not yet done, every 0.2 s, until all are; SnapshotError with
    ``timeout_message(pending)`` once ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    pending = sorted(hosts)
    while pending:
        pending = [host for host in pending if not done(host)]
        if pending and time.monotonic() > deadline:
            raise SnapshotError(timeout_message(pending))
        if pending:
            time.sleep(0.2)


def lab_nic_model(image: Any) -> str:
    """FreeBSD guests get Intel e1000 lab NICs, which FreeBSD names em0, em1 as in the paper's rc.conf
    (the virtio management NIC is vtnet0); Linux guests get virtio-net, the cheapest NIC under TCG."""
    return "e1000" if str(image.name).startswith("freebsd") else "virtio-net-pci"


def _rotation(disk: Disk) -> str:
    return "" if disk.rotational else ",rotation_rate=1"


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


__all__ = ["Accel", "QemuProvider", "choose_accel", "host_ids", "mac_address", "probe_kvm"]
