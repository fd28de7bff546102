"""The lab in QEMU VMs on this machine: shared raw disks, VDE switches, a loopback-only management NIC.

Rooms: ``layout`` (the lab directory's paths, hostids, MACs), ``accel`` (KVM probe or TCG), ``argv``
(each host's qemu command line), ``processes`` (key, disks, switches, launching qemu), ``qmp`` (QEMU's
monitor through qemu.qmp), ``snapshots`` (whole-lab save and restore), ``provider`` (QemuProvider),
``fence`` (the lab's fence listener powering these VMs: its Power, its process, starting and stopping it).
None of them runs a command in a guest or imports lab.remote at import time; the guest hardware comes
from the stack (lab.stacks.hardware), never from the guest image's name.
"""

from __future__ import annotations

from lab.providers.qemu.accel import Accel, choose_accel, probe_kvm
from lab.providers.qemu.layout import host_ids, mac_address
from lab.providers.qemu.provider import QemuProvider

__all__ = ["Accel", "QemuProvider", "choose_accel", "host_ids", "mac_address", "probe_kvm"]
