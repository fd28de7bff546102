"""The FreeBSD stack's qemu hardware started for real: QEMU accepts the command line and lays the devices out as
the FreeBSD naming model (lab/stacks/freebsd/naming.py) assumes.

No FreeBSD here: ctrl-a boots a blank system disk (SeaBIOS finds nothing to boot), which is enough for QEMU to
build every device. What is read back from the running VM through QMP: each NIC's PCI slot and network (em0 is
the first e1000 in slot order), each disk's controller and port or target, the boot disk, and the argv the
process really runs, named by the model as the stack's plan names the devices. Seconds; needs qemu and vde2.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.images import GuestImage
from lab.labdir import processes_of
from lab.providers.qemu import QemuProvider
from lab.qemu_leaf.qmp import QmpClient
from lab.stacks.freebsd.devices import disk_device, nic
from lab.stacks.freebsd.naming import freebsd_names
from lab.stacks.hardware import FREEBSD_HARDWARE
from lab.topology import load_topology

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("qemu-system-x86_64", "qemu-img", "vde_switch", "ssh-keygen")),
    reason="needs qemu-system-x86_64, qemu-img, vde_switch and ssh-keygen",
)


def blank_image(directory: Path) -> GuestImage:
    directory.mkdir(parents=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / "root.qcow2"), "64M"], check=True)
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return GuestImage("freebsd-10.3", directory / "root.qcow2", None, None, "0" * 64, "/dev/ada0", key)


@pytest.fixture
def running_ctrl_a(tmp_path: Path):
    topo = load_topology()
    provider = QemuProvider(topo, lab_dir=tmp_path / "lab", image=blank_image(tmp_path / "image"), accel="tcg",
                            hardware=FREEBSD_HARDWARE)
    try:
        provider.check_socket_paths()
        state = provider._prepare(None)
        provider._launch("ctrl-a", state, None)
        with QmpClient(provider.vm_paths("ctrl-a").qmp) as qmp:
            yield provider, qmp
    finally:
        provider.down()
        assert processes_of(provider.lab_dir) == []


def peripherals(qmp: QmpClient) -> dict[str, dict]:
    """Each anonymous -device: its type and the properties the checks read."""
    found = {}
    for entry in qmp.execute("qom-list", {"path": "/machine/peripheral-anon"}):
        if not entry["type"].startswith("child<"):
            continue
        path = f"/machine/peripheral-anon/{entry['name']}"
        kind = entry["type"][len("child<"):-1]
        props = {"type": kind}
        names = {p["name"] for p in qmp.execute("qom-list", {"path": path})}
        for prop in ("addr", "netdev", "drive", "bootindex", "scsi-id", "parent_bus"):
            if prop in names:
                props[prop] = qmp.execute("qom-get", {"path": path, "property": prop})
        found[path] = props
    return found


def test_qemu_runs_the_freebsd_hardware_as_the_naming_model_assumes(running_ctrl_a):
    provider, qmp = running_ctrl_a
    topo = provider.topology
    host = topo.hosts["ctrl-a"]
    assert qmp.execute("query-status")["status"] in ("running", "paused")

    pid = provider.running_pid("ctrl-a")
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    names = freebsd_names(argv)
    assert names.boot_disk == "ada0"
    assert {d: names.disks[d] for d in topo.disks} == {d: disk_device(topo, d) for d in topo.disks}
    assert [names.nics[n] for n in host.addresses] == [nic(i) for i in range(len(host.addresses))]

    devices = peripherals(qmp)
    e1000_by_slot = sorted((d["addr"], d["netdev"]) for d in devices.values() if d["type"] == "e1000")
    assert [netdev for _, netdev in e1000_by_slot] == list(host.addresses), (
        "em<N> follows PCI slot order: the private network's NIC must sit in the lower slot")
    virtio_nics = [d for d in devices.values() if d["type"] == "virtio-net-pci"]
    assert [d["netdev"] for d in virtio_nics] == ["management"]

    boot = [d for d in devices.values() if d.get("bootindex") == 0]
    assert [(d["type"], d["drive"]) for d in boot] == [("ide-hd", "root")]

    ports = sorted((d["parent_bus"].rsplit("/", 1)[-1], d["drive"]) for d in devices.values() if d["type"] == "ide-hd")
    sata = [d.name for d in topo.disks.values() if disk_device(topo, d.name).startswith("ada")]
    assert ports == [(f"ahci0.{port}", drive) for port, drive in enumerate(["root", *sata])]

    blocks = {b["device"]: b for b in qmp.execute("query-block")}
    assert {"root", *topo.disks} <= set(blocks)
    sas_disks = [d for d in devices.values() if d["type"] == "scsi-hd"]
    assert sorted((d["scsi-id"], d["drive"]) for d in sas_disks) == [
        (index, disk.name) for index, disk in enumerate(topo.disks_on(topo.disks[sas_disks[0]["drive"]].bus))]
    pci = qmp.execute("query-pci")[0]["devices"]
    mptsas = [d for d in pci if (d["id"]["vendor"], d["id"]["device"]) == (0x1000, 0x0054)]
    assert len(mptsas) == 1, "one LSI SAS1068 (mpt(4)) controller for the SAS shelf"
    ahci_slots = sorted(d["slot"] for d in pci if (d["id"]["vendor"], d["id"]["device"]) == (0x8086, 0x2922))
    assert ahci_slots[-1] == 0x1F and len(ahci_slots) == 2, (
        "q35's own AHCI sits in slot 31, after the lab's: the lab's disks are the first ada units")
