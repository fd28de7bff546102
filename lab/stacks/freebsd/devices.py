"""FreeBSD's names for the lab's NICs and disks, and the shell that checks what a host sees: iSCSI sessions,
gmultipath devices, ctld LUNs, the shared disks' serials.

The names follow the order in which FreeBSD probes devices; the checks print nothing and exit 0 when what the
plan names is there, so they serve as steps' checks and verifies.
"""

from __future__ import annotations

from lab.stacks.shell import awk_string, dquote, quote
from lab.topology import Bus, Topology

FIRST_DATA_NIC = 0
"""Index of the first lab NIC: both providers give the management NIC (Vagrant's NAT, QEMU's user
network) a virtio model, which FreeBSD names vtnet0, and the lab NICs Intel e1000 models, so the lab
NICs keep the paper's names em0 (private) and em1 (public)."""

FIRST_DATA_ADA = 1
"""The system disk is ada0 (IDE in the paper; AHCI port 0 on qemu, before the shelf on ports 1..), so the SATA
shelf starts at ada1. lab.stacks.freebsd.naming derives these names from the qemu command line, and
tests/test_qemu_freebsd_hardware.py holds this module to them."""


def nic(index: int) -> str:
    return f"em{FIRST_DATA_NIC + index}"


def disk_device(topo: Topology, disk: str) -> str:
    """A shared disk's FreeBSD name: SATA disks are ada1.. and SAS disks da0.., in declared port order."""
    bus = topo.disks[disk].bus
    index = [d.name for d in topo.disks_on(bus)].index(disk)
    return f"ada{FIRST_DATA_ADA + index}" if bus is Bus.SATA else f"da{index}"


def arbitrator_disk(topo: Topology) -> str:
    """The peer's private LUN on a controller: the next da after the SAS shelf (da4 in the paper)."""
    return f"da{len(topo.disks_on(Bus.SAS))}"


def client_disk(topo: Topology, controller: str, lun: int) -> str:
    """The client logs in to the controllers in order, each giving lun 0 then lun 1: da0..da3."""
    position = [h.name for h in topo.controllers].index(controller)
    return f"da{2 * position + lun}"


def session_exists(target: str, portal: str) -> str:
    program = f"$1 == {awk_string(target)} && $2 == {awk_string(portal)} {{ok = 1}} END {{exit !ok}}"
    return f"iscsictl -L | awk {quote(program)}"


def session_connected(target: str, portal: str, devices: tuple[str, ...] = (), luns: int = 0) -> str:
    """The session is up with exactly ``devices`` (as named in the plan) or at least ``luns`` disks."""
    condition = f'$1 == {awk_string(target)} && $2 == {awk_string(portal)} && $3 == "Connected:"'
    condition += "".join(f" && ${4 + i} == {awk_string(device)}" for i, device in enumerate(devices))
    if luns:
        condition += f" && NF >= {3 + luns}"
    return f"iscsictl -L | awk {quote(f'{condition} {{ok = 1}} END {{exit !ok}}')}"


def session_disk(target: str, portal: str, lun: int) -> str:
    """Shell that prints the da device of one LUN of a live session (names change when a session returns)."""
    program = (f'$1 == {awk_string(target)} && $2 == {awk_string(portal)} && $3 == "Connected:" '
               f"{{print ${4 + lun}}}")
    return f"iscsictl -L | awk {quote(program)}"


def multipath_healthy(name: str, paths: int = 2) -> str:
    return (f"gmultipath status {quote(name)} | grep -Eq 'OPTIMAL|DEGRADED' && "
            f"[ \"$(gmultipath status {quote(name)} | grep -cE '\\((ACTIVE|PASSIVE)\\)')\" -eq {paths} ]")


def ctld_serves(path: str) -> str:
    """ctld has a LUN backed by ``path`` (ctladm devlist -v lists each LUN's ``file=`` option)."""
    return f"ctladm devlist -v | grep -q {quote(f'file={path}$')}"


def disk_field(device: str, field: str) -> str:
    """Shell printing one field of ``geom disk list``: ``ident`` (the disk's serial), ``Mediasize`` (bytes)."""
    return f"geom disk list {quote(device)} | awk '$1 == \"{field}:\" {{print $2}}'"


def disk_is(topo: Topology, disk: str) -> str:
    """Shell that exits 0 when the device the plan names for ``disk`` is that shared disk: its serial, or,
    for a disk that reports none (VirtualBox's SAS disks have no unit-serial VPD page: VSCSILunSbc.cpp;
    geom(8) then prints ``(null)``), its exact size. Leaves the serial seen in ``$i``."""
    device, spec = disk_device(topo, disk), topo.disks[disk]
    return (f'i=$({disk_field(device, "ident")}); [ "$i" = {dquote(spec.serial)} ] || '
            f'{{ {{ [ -z "$i" ] || [ "$i" = "(null)" ]; }} && '
            f'[ "$({disk_field(device, "Mediasize")})" = "{spec.size_mb * 1024 * 1024}" ]; }}')
