"""The lab in QEMU VMs on this machine: shared raw disks, VDE switches, a loopback-only management NIC.

Rooms: ``layout`` (the lab directory's paths, hostids, MACs), ``argv`` (each host's qemu command line),
``processes`` (key, disks, switches, launching qemu), ``snapshots`` (whole-lab save and restore),
``provider`` (QemuProvider), ``fence`` (the lab's fence listener powering these VMs: its Power, its
process, starting and stopping it).
None of them runs a command in a guest or imports lab.remote at import time; the guest hardware comes
from the stack (lab.stacks.hardware), never from the guest image's name. QMP and the KVM-or-TCG probe are
the qemu leaf's (lab.qemu_leaf), which the FreeBSD image preparation uses too.
"""

from __future__ import annotations

from lab.providers.qemu.layout import host_ids, mac_address
from lab.providers.qemu.provider import QemuProvider
from lab.qemu_leaf.accel import Accel, choose_accel, probe_kvm

__all__ = ["Accel", "QemuProvider", "choose_accel", "host_ids", "mac_address", "probe_kvm"]
