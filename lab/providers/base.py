"""What every provider offers: scenarios and the CLI drive VMs only through this interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import Progress

from lab.errors import LabError
from lab.topology import Topology

if TYPE_CHECKING:
    from lab.remote import SshTarget
    from lab.stacks.hardware import GuestHardware


def __getattr__(name: str) -> Any:
    """``SshTarget`` now lives in lab.remote; importing it from here still works, loading paramiko only then."""
    if name == "SshTarget":
        from lab.remote import SshTarget

        return SshTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class HostState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    ABSENT = "absent"


@dataclass(frozen=True)
class HostStatus:
    name: str
    state: HostState
    pid: int | None = None
    ssh_port: int | None = None
    accel: str | None = None
    detail: str = ""


class Provider(ABC):
    """Creates, powers and removes the VMs of one lab described by a topology."""

    name: str = ""
    hardware: GuestHardware | None = None
    """The devices the stack's guests expect (Stack.hardware); None: the Linux stack's."""
    stack_name: str | None = None
    """The stack the caller chose; a provider that keeps state records it at `up` (recorded_stack)."""

    def __init__(self, topology: Topology):
        self.topology = topology

    @abstractmethod
    def up(self, progress: Progress | None = None) -> None:
        """Create and boot every host, then wait until each answers SSH; a no-op on a lab that is up."""

    @abstractmethod
    def down(self) -> None:
        """Stop and remove everything this lab created."""

    @abstractmethod
    def status(self) -> list[HostStatus]:
        """One entry per topology host, in topology order."""

    @abstractmethod
    def start(self, host: str, progress: Progress | None = None) -> None:
        """Boot one stopped host and wait for its SSH."""

    @abstractmethod
    def power_off(self, host: str) -> None:
        """Cut a host's power at once, without a guest shutdown (the paper's "kick-off ctrl-a")."""

    @abstractmethod
    def pause(self, host: str) -> None:
        """Freeze a host's CPUs; its disks and NICs stay attached."""

    @abstractmethod
    def resume(self, host: str) -> None:
        """Continue a paused host."""

    def set_link(self, host: str, network: str, up: bool) -> None:
        """Plug (``up``) or pull a host's cable on one lab network; the guest sees its carrier come and go."""
        raise LabError(f"the {self.name} provider cannot cut network links yet; use the qemu provider")

    def check_link(self, host: str, network: str) -> None:
        self.check_host(host)
        networks = list(self.topology.hosts[host].addresses)
        if network not in networks:
            raise LabError(f"{host} has no NIC on network {network!r}; it is on: {', '.join(networks)}")

    @abstractmethod
    def ssh_target(self, host: str) -> SshTarget:
        """Where to reach the host's sshd."""

    @abstractmethod
    def console_log(self, host: str) -> Path:
        """The file the host's serial console is written to."""

    @abstractmethod
    def wait_for_ssh(self, host: str, timeout: float | None = None) -> None:
        """Return once the host accepts the lab key over SSH; raise LabError naming the console log.
        (The qemu provider delegates to lab.guests.wait_for_ssh, imported only then.)"""

    # snapshots: a whole provisioned lab saved and restored together (RAM, devices, every disk)

    def snapshot_save(self, name: str, progress: Progress | None = None, replace: bool = False) -> Any:
        """Save every host's running state and every disk as snapshot ``name``; the lab keeps running.

        Returns the snapshot's manifest (lab.providers.snapshot.Manifest)."""
        raise LabError(f"the {self.name} provider cannot take snapshots yet; use the qemu provider")

    def snapshot_restore(self, name: str, progress: Progress | None = None) -> dict[str, Any]:
        """Put the lab back exactly as it was when ``name`` was saved, running; returns timings. Guest
        clocks are left behind by the snapshot's age: the caller sets them (lab.guests.sync_clocks).

        Raises lab.providers.snapshot.SnapshotUnusable, having changed nothing, when the snapshot does
        not exist or was taken from another topology or guest image."""
        raise LabError(f"the {self.name} provider cannot take snapshots yet; use the qemu provider")

    def snapshots(self) -> list[Any]:
        """The lab's snapshots' manifests, by name."""
        raise LabError(f"the {self.name} provider cannot take snapshots yet; use the qemu provider")

    def snapshot_delete(self, name: str) -> None:
        raise LabError(f"the {self.name} provider cannot take snapshots yet; use the qemu provider")

    def recorded_stack(self) -> str | None:
        """The stack the lab was brought up with, when the provider keeps it; None: not recorded."""
        return None

    def host_names(self) -> list[str]:
        return list(self.topology.hosts)

    def check_host(self, host: str) -> None:
        if host not in self.topology.hosts:
            known = ", ".join(self.topology.hosts)
            raise LabError(f"no host {host!r} in lab {self.topology.lab.name}; hosts are: {known}")
