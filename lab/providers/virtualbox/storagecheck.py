"""What a booted controller VM must have for the lab's storage, checked before anything is provisioned.

Storage is set up only before a VM's first boot (the Vagrantfile's first-boot ``vb.customize`` lines), so a
VM created earlier, by another version of the lab or by hand, may lack a disk or the SATA serials; the
guest would then get other device names or VirtualBox's own ``VB...`` serials, and the FreeBSD stack would
stop before ``zpool create``. These checks say so in one line, with the cure.
"""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError
from lab.providers.virtualbox import layout
from lab.providers.virtualbox.vboxmanage import Runner, parse_extradata
from lab.topology import Topology

CURE = "run `bst down` and `bst up` again"


def check_storage(topology: Topology, lab_dir: Path, host: str, info: dict[str, str], run: Runner) -> None:
    """Each shared disk on its controller port (``info`` is the VM's ``showvminfo --machinereadable``), as
    the paper's device names need, then each SATA disk's serial."""
    for disk in layout.shared_disks(topology, topology.hosts[host]):
        controller = layout.CONTROLLERS[disk.bus][0]
        port = layout.disk_port(topology, disk)
        expected = layout.medium_path(lab_dir, disk)
        found = info.get(f"{controller}-{port}-0", "none")
        if found == "none" or Path(found).resolve() != expected.resolve():
            raise LabError(f"{host} lacks shared disk {disk.name} on {controller} port {port} (found {found}); "
                           f"storage is attached before a VM's first boot: {CURE}")
    check_serials(topology, host, info, run)


def check_serials(topology: Topology, host: str, info: dict[str, str], run: Runner) -> None:
    """The SATA serials the FreeBSD stack checks: the SATA controller is the AHCI instance their keys name,
    and ``getextradata <vm> enumerate`` holds ``beast-<disk>`` for every SATA port."""
    vm = layout.vm_name(topology, host)
    wanted = layout.serial_commands(topology, topology.hosts[host], vm)
    if not wanted:
        return
    indexes = {value: key.removeprefix("storagecontrollername") for key, value in info.items()
               if key.startswith("storagecontrollername")}
    instance = info.get(f"storagecontrollerinstance{indexes.get(layout.SATA_CONTROLLER, '?')}", "none")
    if instance != str(layout.AHCI_INSTANCE):
        raise LabError(f"{host}'s {layout.SATA_CONTROLLER} is AHCI instance {instance}, but the disk serials are "
                       f"set on instance {layout.AHCI_INSTANCE}; remove the VM's other SATA controllers or {CURE}")
    found = parse_extradata(run(["getextradata", vm, "enumerate"]))
    for _, _, key, serial in wanted:
        if found.get(key) != serial:
            raise LabError(f"{host} lacks serial {serial} on its SATA disk's port (extradata {key} is "
                           f"{found.get(key, 'unset')}); serials are set before a VM's first boot: {CURE}")
