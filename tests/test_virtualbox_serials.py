"""The shared SATA disks carry serial ``beast-<disk>`` under VirtualBox, as the FreeBSD stack checks.

The serial is VirtualBox's per-port AHCI extradata (manual, "Configuring the Hard Disk Vendor Product Data
(VPD)"), set with the first-boot ``vb.customize`` lines; ``bst up`` then reads it back with
``getextradata <vm> enumerate``. ``showvminfo`` and ``getextradata`` texts here are constructed in the
formats VBoxManageInfo.cpp and VBoxManageMisc.cpp print.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from virtualbox_support import refusal

from lab.errors import LabError
from lab.providers.virtualbox import VirtualBoxProvider, layout
from lab.providers.virtualbox.vboxmanage import parse_extradata
from lab.topology import Bus, load_topology

PAPER = load_topology()
GUI_ITEM = ("GUI/LastCloseAction", "PowerOff")


def extradata(*items: tuple[str, str]) -> str:
    return "".join(f"Key: {key}, Value: {value}\n" for key, value in items)


def serials_of(host: str) -> list[tuple[str, str]]:
    return [(argv[2], argv[3]) for argv in layout.serial_commands(PAPER, PAPER.hosts[host])]


class Replies:
    """VBoxManage answering ``showvminfo`` and ``getextradata`` from a dict keyed by verb; records argv."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        return self.replies[argv[0]]


def provider_seeing(tmp_path: Path, host: str, items: list[tuple[str, str]], sata_instance: int = 0):
    """A provider whose VM ``host`` has every shared disk attached and the given extradata."""
    lab_dir = tmp_path / "lab"
    lines = ['storagecontrollername0="IDE Controller"', 'storagecontrollerinstance0="0"',
             'storagecontrollername1="SATA Controller"', f'storagecontrollerinstance1="{sata_instance}"',
             'storagecontrollername2="SAS Controller"', 'storagecontrollerinstance2="0"']
    for disk in layout.shared_disks(PAPER, PAPER.hosts[host]):
        slot = f"{layout.CONTROLLERS[disk.bus][0]}-{layout.disk_port(PAPER, disk)}-0"
        lines.append(f'"{slot}"="{layout.medium_path(lab_dir.resolve(), disk)}"')
    vbox = Replies({"showvminfo": "\n".join(lines) + "\n", "getextradata": extradata(GUI_ITEM, *items)})
    return VirtualBoxProvider(PAPER, lab_dir, vboxmanage=vbox), vbox


def test_every_sata_disk_gets_its_serial_on_its_port_on_each_controller(tmp_path: Path):
    """The FreeBSD stack refuses a shared disk whose ident is not ``beast-<disk>``; SAS disks have no serial
    VirtualBox could set (the stack matches them by size), so they get no line."""
    for host in PAPER.controllers:
        commands = layout.storage_commands(PAPER, host, tmp_path, "vm")
        serials = [argv for argv in commands if argv[0] == "setextradata" and argv[2].endswith("/SerialNumber")]
        ports = {argv[2]: argv[3] for argv in serials}
        assert len(ports) == len(serials) == len(PAPER.disks_on(Bus.SATA)) == 4
        for disk in PAPER.disks_on(Bus.SATA):
            port = layout.disk_port(PAPER, disk)
            assert ports[f"VBoxInternal/Devices/ahci/0/Config/Port{port}/SerialNumber"] == f"beast-{disk.name}"
            assert len(ports[layout.serial_key(port)]) <= 20
        assert all(argv[1] == "vm" for argv in serials)
    assert layout.serial_commands(PAPER, PAPER.hosts["clnt-1"]) == []


def test_a_vm_with_every_serial_passes(tmp_path: Path):
    provider, vbox = provider_seeing(tmp_path, "ctrl-b", serials_of("ctrl-b"))
    provider.verify_storage("ctrl-b")
    assert vbox.calls[-1] == ["getextradata", "beast-ctrl-b", "enumerate"]


def test_a_vm_without_the_sata_serials_is_refused_after_boot(tmp_path: Path):
    """A VM made before the serials were set keeps VirtualBox's ``VB...`` serials: bst says so, not the stack."""
    wrong = [(key, "VB1f2e3d4c-5b6a7988" if value == "beast-d10" else value) for key, value in serials_of("ctrl-b")]
    provider, _ = provider_seeing(tmp_path, "ctrl-b", wrong)
    message = refusal(provider.verify_storage, "ctrl-b")
    assert message.startswith("ctrl-b lacks serial beast-d10 on its SATA disk's port (extradata "
                              "VBoxInternal/Devices/ahci/0/Config/Port2/SerialNumber is VB1f2e3d4c-5b6a7988)")
    assert message.endswith("run `bst down` and `bst up` again")

    provider, _ = provider_seeing(tmp_path, "ctrl-b", [])
    with pytest.raises(LabError, match=r"lacks serial beast-d00 .*Port0/SerialNumber is unset\)"):
        provider.verify_storage("ctrl-b")


def test_serials_on_another_ahci_instance_are_refused(tmp_path: Path):
    provider, _ = provider_seeing(tmp_path, "ctrl-a", serials_of("ctrl-a"), sata_instance=1)
    assert refusal(provider.verify_storage, "ctrl-a").startswith(
        "ctrl-a's SATA Controller is AHCI instance 1, but the disk serials are set on instance 0")


def test_the_client_has_no_serial_to_check(tmp_path: Path):
    vbox = Replies({})
    VirtualBoxProvider(PAPER, tmp_path / "lab", vboxmanage=vbox).verify_storage("clnt-1")
    assert vbox.calls == []


def test_extradata_is_read_from_enumerate_lines():
    key = "VBoxInternal/Devices/ahci/0/Config/Port0/SerialNumber"
    assert parse_extradata(extradata(GUI_ITEM, (key, "beast-d00"))) == {GUI_ITEM[0]: GUI_ITEM[1], key: "beast-d00"}
    assert parse_extradata("") == {}
