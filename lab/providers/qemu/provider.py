"""QemuProvider: a topology's hosts as QEMU VMs on this machine, and powering them (up, down, start,
power off, pause, resume, cable pulls) through pid files and QMP.

State lives in the lab directory (see lab.providers.qemu.layout), so any process can manage a lab. The
provider runs nothing in a guest: waiting for SSH is lab.guests' (imported when a boot needs it).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import Progress

from lab.errors import LabError
from lab.labdir import checked_lab_dir, default_lab_dir, lab_lock, remove_inside, stop_owned_process, wait_for_exit
from lab.providers.base import HostState, HostStatus, Provider
from lab.providers.qemu.fence.service import ensure_listener
from lab.providers.qemu.snapshots import QemuSnapshots
from lab.qemu_leaf.accel import QEMU
from lab.qemu_leaf.qmp import QmpClient, QmpError, qmp_command
from lab.topology import Topology

if TYPE_CHECKING:
    from lab.remote import SshTarget
    from lab.stacks.hardware import GuestHardware

OWNED_NAMES = ("state.json", "ssh", "disks", "net", "vm", "fence")
"""What `down` removes from the lab directory: only names this provider creates (snapshots stay)."""


class QemuProvider(QemuSnapshots, Provider):
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
        hardware: GuestHardware | None = None,
        stack_name: str | None = None,
    ):
        """``image``: a lab.images.GuestImage to boot (default: the image the hardware needs: the cached
        Debian image, built if needed, or the FreeBSD image `bst image freebsd` prepared).

        ``accel``: ``kvm`` or ``tcg`` to skip the probe. ``boot_timeout_s`` overrides lab.boot_timeout_s.
        ``hardware``: the devices the stack's guests expect (lab.stacks.hardware); None: the Linux stack's.
        ``stack_name``: recorded in state.json at `up`, so later commands find the stack the lab runs.
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
        self.hardware = hardware
        self.stack_name = stack_name

    def recorded_stack(self) -> str | None:
        """The stack the lab was brought up with (None: no lab, or one from before stacks were recorded)."""
        try:
            return self.load_state().get("stack")
        except LabError:
            return None

    # Provider

    def up(self, progress: Progress | None = None) -> None:
        from lab.providers import require_tools

        require_tools("qemu")
        self.check_socket_paths()
        with lab_lock(self.lab_dir, "up"):
            if not self._all_running():
                state = self._prepare(progress)
                ensure_listener(self)
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

    def status(self) -> list[HostStatus]:
        state = self.load_state()
        return [self.host_status(name, state) for name in self.topology.hosts]

    def host_status(self, name: str, state: dict[str, Any] | None = None) -> HostStatus:
        """One host's status (a paused VM is PAUSED, running or not: its monitor says which)."""
        recorded = (state if state is not None else self.load_state()).get("hosts", {}).get(name, {})
        paths = self.vm_paths(name)
        pid = self.running_pid(name)
        port = recorded.get("ssh_port")
        accel = recorded.get("accel")
        if pid is None:
            created = paths.overlay.exists()
            return HostStatus(
                name,
                HostState.STOPPED if created else HostState.ABSENT,
                None,
                None,
                accel,
                f"console log {paths.console_log}" if created else "not created",
            )
        try:
            run_state = qmp_command(paths.qmp, "query-status")
            qemu_status = run_state.get("status", "")
            state_name = HostState.RUNNING if run_state.get("running") else HostState.PAUSED
            detail = f"ssh 127.0.0.1:{port}" if qemu_status == "running" else f"qemu status {qemu_status}"
        except QmpError as err:
            state_name, detail = HostState.RUNNING, f"monitor unreachable: {err}"
        return HostStatus(name, state_name, pid, port, accel, detail)

    def start(self, host: str, progress: Progress | None = None) -> None:
        self.check_host(host)
        with lab_lock(self.lab_dir, f"start {host}"):
            if self.running_pid(host) is not None:
                return
            state = self._prepare(progress)
            ensure_listener(self)
            self._launch(host, state, progress)
            self._wait_all([host], progress)

    def launch(self, host: str) -> None:
        """Start one host's qemu without waiting for its SSH: the fence listener's power-on."""
        self.check_host(host)
        with lab_lock(self.lab_dir, f"fence on {host}"):
            if self.running_pid(host) is not None:
                return
            self._launch(host, self._prepare(None), None)

    def power_off(self, host: str) -> None:
        self.check_host(host)
        pid = self.running_pid(host)
        if pid is None:
            return
        try:
            with QmpClient(self.vm_paths(host).qmp) as qmp:
                qmp.quit()
            quitting = 5.0
        except QmpError:
            quitting = 0.0
        pidfile = self.vm_paths(host).pidfile
        if not wait_for_exit(pid, pidfile, quitting):
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
        from lab.remote import SshTarget

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

    def _monitor(self, host: str, command: str) -> None:
        self.check_host(host)
        if self.running_pid(host) is None:
            raise LabError(f"{host} is not running; start it with `bst start {host}`")
        qmp_command(self.vm_paths(host).qmp, command)

    def _wait_all(
        self,
        hosts: list[str],
        progress: Progress | None,
        timeout: float | None = None,
        stop_failed: bool = True,
    ) -> None:
        """Wait for SSH on ``hosts`` in parallel; on failure stop the failed hosts and say where to look."""
        from lab.guests import wait_for_ssh

        if not hosts:
            return
        timeout = self.boot_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            futures = {h: pool.submit(wait_for_ssh, self, h, deadline, progress, self._gone) for h in hosts}
        failures = {h: f.exception() for h, f in futures.items() if f.exception() is not None}
        if not failures:
            return
        if stop_failed:
            for host in failures:
                self.power_off(host)
        messages = "; ".join(str(err) for err in failures.values())
        suffix = " (stopped; `bst down` removes the rest of the lab)" if stop_failed else ""
        raise LabError(messages + suffix)

    def _gone(self, host: str) -> str | None:
        return None if self.running_pid(host) is not None else f"{host}'s qemu exited while booting"
