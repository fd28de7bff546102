"""The virtual hardware a stack's guests expect, declared by the stack and built by the providers.

A provider must not guess it from the guest image's name: FreeBSD names an Intel e1000 NIC em0, em1 as in
the paper's rc.conf, Linux wants virtio-net (the cheapest NIC under TCG) and a kernel that keeps eth0.
Plain data: imports nothing from providers, guests or the network.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuestHardware:
    lab_nic_model: str
    """QEMU device model of each lab-network NIC (``-device <model>,netdev=...``)."""
    kernel_args: tuple[str, ...] = ()
    """Added to the kernel command line when the provider boots the guest's kernel directly."""


LINUX_HARDWARE = GuestHardware(lab_nic_model="virtio-net-pci", kernel_args=("net.ifnames=0",))
"""``net.ifnames=0``: without it udev renames eth0 to enp0sN while the identity service configures the NIC
it found by MAC, and the address is lost ("Cannot find device eth0"); guests find NICs by MAC."""

FREEBSD_HARDWARE = GuestHardware(lab_nic_model="e1000")
"""e1000 NICs, which FreeBSD names em0, em1 as in the paper (the virtio management NIC is vtnet0)."""

__all__ = ["FREEBSD_HARDWARE", "LINUX_HARDWARE", "GuestHardware"]
