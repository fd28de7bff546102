"""The virtual hardware a stack's guests expect, declared by the stack and built by the providers.

A provider must not guess it from the guest image's name: FreeBSD names an Intel e1000 NIC em0, em1 as in
the paper's rc.conf, Linux wants virtio-net (the cheapest NIC under TCG) and a kernel that keeps eth0.
Plain data: imports nothing from providers, guests or the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

VIRTIO_BLK = "virtio-blk"
"""The system disk as a virtio-blk PCI device (Linux's /dev/vda)."""
AHCI_PORT0 = "ahci-port0"
"""The system disk on port 0 of the first AHCI controller, the SATA shelf on ports 1.. (FreeBSD's ada0)."""


@dataclass(frozen=True)
class GuestHardware:
    lab_nic_model: str
    """QEMU device model of each lab-network NIC (``-device <model>,netdev=...``)."""
    kernel_args: tuple[str, ...] = ()
    """Added to the kernel command line when the provider boots the guest's kernel directly."""
    system_disk: str = VIRTIO_BLK
    """How the system disk is attached: VIRTIO_BLK or AHCI_PORT0."""
    sas_controller: str = "virtio-scsi-pci"
    """QEMU device model of the SAS shelf's controller (the cache disks are its targets 0..)."""
    sas_controller_fallback: str | None = None
    """The model to use instead if the guest's driver does not attach to ``sas_controller`` on a real run."""
    boots_from_disk: bool = False
    """True: the guest's own loader boots from the system disk (no -kernel); False: the provider gives the
    kernel and its command line carries the host's identity."""
    image: str = "debian"
    """The guest image the stack needs (a GuestImage ``name`` starts with it)."""
    smbios_uuid: bool = False
    """Give each VM its own SMBIOS system UUID (``-uuid``), from which the guest derives its hostid."""

    @property
    def system_disk_on_ahci(self) -> bool:
        """The system disk takes AHCI port 0, so the SATA shelf starts at port 1."""
        return self.system_disk == AHCI_PORT0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuestHardware:
        """The hardware ``to_dict`` recorded (the fence listener's launch.json); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown guest hardware fields {', '.join(unknown)}")
        return cls(**{**data, "kernel_args": tuple(data.get("kernel_args", ()))})


LINUX_HARDWARE = GuestHardware(lab_nic_model="virtio-net-pci", kernel_args=("net.ifnames=0",))
"""``net.ifnames=0``: without it udev renames eth0 to enp0sN while the identity service configures the NIC
it found by MAC, and the address is lost ("Cannot find device eth0"); guests find NICs by MAC."""

FREEBSD_HARDWARE = GuestHardware(
    lab_nic_model="e1000",
    system_disk=AHCI_PORT0,
    sas_controller="mptsas1068",
    sas_controller_fallback="virtio-scsi-pci",
    boots_from_disk=True,
    image="freebsd-10.3",
    smbios_uuid=True,
)
"""The paper's device names (lab.stacks.freebsd.naming models them): e1000 NICs are em0 (private), em1
(public), the virtio management NIC vtnet0; the system disk ada0 and the SATA shelf ada1.. on one AHCI
controller; the SAS shelf da0.. on QEMU's LSI SAS1068 (``mptsas1068``), which mpt(4) of 10.3's GENERIC
drives (sys/dev/mpt/mpt_pci.c lists the SAS1068 PCI id). The fallback, if mpt does not attach on the first
real run, is virtio-scsi (virtio_scsi(4), also in GENERIC), whose disks are da0.. in the same order.
``smbios_uuid``: an image without /etc/hostid takes its hostid from smbios.system.uuid (etc/rc.d/hostid of
10.3), so each VM gets its own UUID."""

__all__ = ["AHCI_PORT0", "FREEBSD_HARDWARE", "LINUX_HARDWARE", "VIRTIO_BLK", "GuestHardware"]
