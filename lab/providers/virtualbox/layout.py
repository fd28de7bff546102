"""The VirtualBox lab as data: VM names, file places and the exact VBoxManage command lines.

Pure functions of the topology, so the command lines are tested exactly and the Vagrantfile applies
the very same ones (it receives them through ``export-json``). A command that targets a VM carries
``VM_PLACEHOLDER`` where the VM goes: Vagrant's ``vb.customize`` replaces ``:id`` with the VM's UUID,
the provider puts the VM name there.
"""

from __future__ import annotations

from pathlib import Path

from lab.environment import env_box_name
from lab.topology import Bus, Disk, Host, Network, Role, Topology

VM_PLACEHOLDER = ":id"
DEFAULT_BOX = "freebsd/FreeBSD-10.3-RELEASE"
BOX_BASE_MAC = "080027D14C66"
"""The MAC of the official FreeBSD box's NAT adapter (its box.ovf); Vagrant needs it set for this box."""

SATA_CONTROLLER = "SATA Controller"
SAS_CONTROLLER = "SAS Controller"
CONTROLLERS = {
    Bus.SATA: (SATA_CONTROLLER, "sata", "IntelAhci"),
    Bus.SAS: (SAS_CONTROLLER, "sas", "LsiLogicSas"),
}
"""Bus -> (controller name, storagectl --add, --controller): data on AHCI (ada1..), cache on LSI SAS (da0..)."""

AHCI_INSTANCE = 0
"""The lab's SATA controller is the VM's first AHCI device, ``ahci/0``: the box's system disk is on IDE
(its box.ovf), and VirtualBox numbers controllers per bus (Machine::addStorageController)."""

MANAGEMENT_NIC_TYPE = "virtio"
LAB_NIC_TYPE = "82540EM"
"""Vagrant's NAT adapter is NIC 1; as virtio it becomes vtnet0, so the lab NICs keep the paper's em0/em1."""

SERIAL_PORT = ("0x3F8", "4")
MEDIUM_FORMAT = "vdi"
ROOT_PASSWORD = "vagrant"
"""Root's password in the official FreeBSD Vagrant boxes (their image has no sudo)."""


def host_side_address(network: Network) -> tuple[str, str]:
    """The address and netmask of the host-only interface for ``network``: the host takes its first address."""
    return str(network.cidr.network_address + 1), str(network.cidr.netmask)


def box_name() -> str:
    return env_box_name("BEAST_BOX") or DEFAULT_BOX


def vm_name(topology: Topology, host: str) -> str:
    """The VirtualBox VM name: prefixed by the lab so two labs never share a VM."""
    return f"{topology.lab.name}-{host}"


def medium_path(lab_dir: Path, disk: Disk) -> Path:
    return lab_dir / "disks" / f"{disk.name}.{MEDIUM_FORMAT}"


def console_log_path(lab_dir: Path, host: str) -> Path:
    return lab_dir / f"{host}.console.log"


def shared_disks(topology: Topology, host: Host) -> tuple[Disk, ...]:
    """Disks attached to ``host``: every shared disk on a controller, none on the client."""
    if host.role is not Role.CONTROLLER:
        return ()
    return (*topology.disks_on(Bus.SATA), *topology.disks_on(Bus.SAS))


def disk_port(topology: Topology, disk: Disk) -> int:
    """The disk's port on its bus controller: its position among that bus's disks."""
    return topology.disks_on(disk.bus).index(disk)


def guest_interfaces(host: Host) -> dict[str, str]:
    """Network -> FreeBSD interface name: em0, em1, ... in NIC order, as in the paper's rc.conf."""
    return {network: f"em{index}" for index, network in enumerate(host.addresses)}


def host_only_networks(topology: Topology) -> list[Network]:
    return list(topology.networks.values())


def networks_conf_line(topology: Topology) -> str:
    """The /etc/vbox/networks.conf line allowing every lab network, lowest first."""
    cidrs = sorted((net.cidr for net in topology.networks.values()), key=lambda c: int(c.network_address))
    return "* " + " ".join(str(c) for c in cidrs)


# --- VBoxManage command lines ---------------------------------------------------------------------


def create_medium_commands(disk: Disk, path: Path) -> list[list[str]]:
    """A fixed-size medium, then made shareable (only fixed-size media may be shareable)."""
    return [
        ["createmedium", "disk", "--filename", str(path), "--size", str(disk.size_mb), "--variant", "Fixed"],
        ["modifymedium", "disk", str(path), "--type", "shareable"],
    ]


def controller_commands(topology: Topology, host: Host, vm: str = VM_PLACEHOLDER) -> list[list[str]]:
    """The SATA and SAS controllers a controller host needs, sized to its disks."""
    commands = []
    for bus, (name, kind, chip) in CONTROLLERS.items():
        disks = topology.disks_on(bus)
        if disks and shared_disks(topology, host):
            commands.append(["storagectl", vm, "--name", name, "--add", kind, "--controller", chip,
                             "--portcount", str(len(disks)), "--bootable", "off"])
    return commands


def attach_commands(topology: Topology, host: Host, lab_dir: Path, vm: str = VM_PLACEHOLDER) -> list[list[str]]:
    """Each shared disk on its bus controller's port; solid-state marked only where the disk is."""
    commands = []
    for disk in shared_disks(topology, host):
        command = ["storageattach", vm, "--storagectl", CONTROLLERS[disk.bus][0], "--port",
                   str(disk_port(topology, disk)), "--device", "0", "--type", "hdd",
                   "--medium", str(medium_path(lab_dir, disk)), "--mtype", "shareable"]
        if not disk.rotational:
            command += ["--nonrotational", "on"]
        commands.append(command)
    return commands


def serial_key(port: int) -> str:
    """The extradata key of an AHCI port's ATA serial (VirtualBox manual, "Configuring the Hard Disk Vendor
    Product Data (VPD)"): at most 20 bytes (DevAHCI.cpp refuses the VM's start otherwise; the topology
    rules keep ``beast-<disk>`` within that), read when the VM starts, so set before its first boot."""
    return f"VBoxInternal/Devices/ahci/{AHCI_INSTANCE}/Config/Port{port}/SerialNumber"


def serial_commands(topology: Topology, host: Host, vm: str = VM_PLACEHOLDER) -> list[list[str]]:
    """Each shared SATA disk's serial ``beast-<disk>`` on its port, the ident the FreeBSD stack checks before
    ``zpool create``; without it the guest sees VirtualBox's own ``VB<uuid>`` serial.

    The SAS disks get none: VirtualBox's LsiLogic SAS device has no per-port setting and its SCSI disks
    (VSCSILunSbc.cpp) offer no unit-serial VPD page, so FreeBSD reports no serial and the stack matches
    them by their exact size."""
    return [["setextradata", vm, serial_key(disk_port(topology, disk)), disk.serial]
            for disk in shared_disks(topology, host) if disk.bus is Bus.SATA]


def storage_commands(topology: Topology, host: Host, lab_dir: Path, vm: str = VM_PLACEHOLDER) -> list[list[str]]:
    """Everything that gives a controller the paper's storage layout; run once, before the VM's first boot."""
    return [*controller_commands(topology, host, vm), *attach_commands(topology, host, lab_dir, vm),
            *serial_commands(topology, host, vm)]


def detach_commands(topology: Topology, host: Host, vm: str) -> list[list[str]]:
    """Empty every shared-disk port, so destroying the VM cannot delete a shared medium."""
    return [
        ["storageattach", vm, "--storagectl", CONTROLLERS[disk.bus][0], "--port", str(disk_port(topology, disk)),
         "--device", "0", "--medium", "none"]
        for disk in shared_disks(topology, host)
    ]


def machine_commands(host: Host, lab_dir: Path, vm: str = VM_PLACEHOLDER) -> list[list[str]]:
    """Settings applied at every boot: NIC models (paper interface names) and the serial console file."""
    commands = [["modifyvm", vm, "--nictype1", MANAGEMENT_NIC_TYPE]]
    commands += [["modifyvm", vm, f"--nictype{index}", LAB_NIC_TYPE] for index in range(2, len(host.addresses) + 2)]
    commands.append(["modifyvm", vm, "--uart1", *SERIAL_PORT, "--uartmode1", "file",
                     str(console_log_path(lab_dir, host.name))])
    return commands


def host_only_create_commands(network: Network, interface: str) -> list[list[str]]:
    """Give a freshly created host-only interface the network's first address."""
    ip, netmask = host_side_address(network)
    return [["hostonlyif", "ipconfig", interface, "--ip", ip, "--netmask", netmask]]


def delete_medium_command(path: Path) -> list[str]:
    return ["closemedium", "disk", str(path), "--delete"]


# --- what the Vagrantfile reads ---------------------------------------------------------------------


def vagrant_export(topology: Topology, lab_dir: Path) -> dict:
    """The topology as the Vagrantfile needs it (JSON-able): one source of truth for both paths."""
    hosts = []
    for host in topology.hosts.values():
        interfaces = guest_interfaces(host)
        hosts.append({
            "name": host.name,
            "vm_name": vm_name(topology, host.name),
            "role": str(host.role),
            "memory_mb": host.memory_mb,
            "cpus": host.cpus,
            "networks": [
                {"network": network, "ip": str(address), "netmask": str(topology.networks[network].cidr.netmask),
                 "nic_type": LAB_NIC_TYPE, "guest_interface": interfaces[network]}
                for network, address in host.addresses.items()
            ],
            "console_log": str(console_log_path(lab_dir, host.name)),
            "customize": machine_commands(host, lab_dir),
            "first_boot_customize": storage_commands(topology, host, lab_dir),
            "shared_disks": [disk.name for disk in shared_disks(topology, host)],
        })
    return {
        "lab": topology.lab.name,
        "topology": topology.source,
        "lab_dir": str(lab_dir),
        "box": box_name(),
        "base_mac": BOX_BASE_MAC,
        "boot_timeout_s": topology.lab.boot_timeout_s,
        "vm_placeholder": VM_PLACEHOLDER,
        "hosts": hosts,
    }
