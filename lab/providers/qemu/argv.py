"""A qemu lab host's command line: machine, disks (root overlay, shared SATA/SAS disks), NICs, kernel args.

Pure: reads the topology, the lab's paths and the hardware the stack declared (lab.stacks.hardware);
starts nothing and must not look at the guest image's name to decide a device.

Shared disks use ``cache=none`` (O_DIRECT): a write the guest sees completed is in the shared file
itself, not in one process's view of the host page cache, so the peer controller's reads and the
paper's abrupt power-off never miss it. Flushes stay the guest's business, as with a real disk's write
cache, which ZFS handles; ``directsync`` would add an fdatasync to every write (protection against a
host crash, which no drill simulates) and slow the ZIL further under TCG.

The second UART (ttyS1, a 16550 so that it is a tty) is the guest's fence port: qemu connects it to the
lab's fence listener (lab.fence) and reconnects every second while the listener is away.

The stack's GuestHardware decides the rest: Linux boots the provider's kernel from a virtio-blk system disk
with the SAS shelf on virtio-scsi; FreeBSD boots its own loader from AHCI port 0 (``bootindex=0``), the SATA
shelf on ports 1.., the SAS shelf on an LSI SAS1068, and a per-VM SMBIOS UUID.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from lab.errors import LabError
from lab.providers.qemu.layout import QemuLayout
from lab.qemu_leaf.accel import Accel
from lab.topology import Bus, Disk, Host

if TYPE_CHECKING:
    from lab.stacks.hardware import GuestHardware

AHCI_PORTS = 6
"""Ports of QEMU's ich9-ahci (hw/ide/ahci.c: ICH9 has 6); more SATA disks spill to the next controller."""
DISK_CACHE_MODE = "none"
SAS_TARGETS = {"mptsas1068": 8, "virtio-scsi-pci": 256}
"""How many targets each SAS controller model takes, one LUN each (QEMU's hw/scsi/mptsas.c: max_target =
MPTSAS_NUM_PORTS - 1 = 7 and max_lun = 1; virtio-scsi: VIRTIO_SCSI_MAX_TARGET 255)."""


class QemuCommandLine(QemuLayout):
    """Builds each host's qemu argv from the topology, the lab layout and the stack's guest hardware."""

    qemu: str
    hardware: GuestHardware | None
    """None: the Linux stack's (imported when first needed: lab.stacks loads paramiko)."""

    def guest_hardware(self) -> GuestHardware:
        if self.hardware is None:
            from lab.stacks.hardware import LINUX_HARDWARE

            self.hardware = LINUX_HARDWARE
        return self.hardware

    def qemu_command(
        self,
        host_name: str,
        image: Any,
        ssh_port: int,
        accel: str,
        ssh_pubkey: str,
        disk_cache: str = DISK_CACHE_MODE,
    ) -> list[str]:
        """The full qemu argv for one host (pure: reads nothing but the topology and its arguments)."""
        host = self.topology.hosts[host_name]
        paths = self.vm_paths(host_name)
        macs = self.nic_macs(host_name)
        argv = [
            self.qemu,
            "-name",
            f"{host_name},debug-threads=on",
            *Accel(accel, "").qemu_args,
            "-machine",
            "q35",
            "-smp",
            str(host.cpus),
            "-m",
            str(host.memory_mb),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-daemonize",
            "-pidfile",
            str(paths.pidfile),
            "-qmp",
            f"unix:{paths.qmp},server=on,wait=off",
            "-chardev",
            f"socket,id=console,path={paths.console_socket},server=on,wait=off,"
            f"logfile={paths.console_log},logappend=on",
            "-serial",
            "chardev:console",
            "-chardev",
            f"socket,id=fence,path={self.fence_socket(host_name)},reconnect=1",
            "-device",
            "isa-serial,chardev=fence,index=1",
            "-device",
            "virtio-rng-pci",
        ]
        hardware = self.guest_hardware()
        if hardware.smbios_uuid:
            argv += ["-uuid", smbios_uuid(self.topology.lab.name, host_name)]
        if not hardware.boots_from_disk:
            if image.kernel is None:
                raise LabError(f"image {image.name} has no kernel to boot, and the stack's guests boot one the "
                               "provider gives; use the stack the image is for (--stack)")
            argv += ["-kernel", str(image.kernel)]
            if image.initrd is not None:
                argv += ["-initrd", str(image.initrd)]
            argv += ["-append", self.kernel_cmdline(host, ssh_pubkey, image.root_device)]
        argv += ["-drive", f"if=none,id=root,file={paths.overlay},format=qcow2,cache=writeback"]
        if not hardware.system_disk_on_ahci:
            argv += ["-device", "virtio-blk-pci,drive=root"]
        argv += self.disk_args(host, disk_cache)
        argv += [
            "-netdev",
            f"user,id=management,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device",
            f"virtio-net-pci,netdev=management,mac={macs['management']}",
        ]
        for network in host.addresses:
            argv += [
                "-netdev",
                f"vde,id={network},sock={self.switch_dir(network)}",
                "-device",
                f"{self.guest_hardware().lab_nic_model},netdev={network},mac={macs[network]}",
            ]
        return argv

    def disk_args(self, host: Host, disk_cache: str) -> list[str]:
        """Shared disks: SATA ones on ICH9 AHCI ports, SAS ones on the SAS controller's targets, in declared
        order; with the system disk on AHCI, it takes port 0 (``bootindex=0``) and the SATA shelf ports 1.."""
        hardware = self.guest_hardware()
        disks = self.shared_disks(host)
        sata = [d for d in disks if d.bus is Bus.SATA]
        sas = [d for d in disks if d.bus is Bus.SAS]
        system_on_ahci = hardware.system_disk_on_ahci
        first_port = 1 if system_on_ahci else 0
        argv: list[str] = []
        for controller in range((first_port + len(sata) + AHCI_PORTS - 1) // AHCI_PORTS):
            argv += ["-device", f"ich9-ahci,id=ahci{controller}"]
        if sas:
            model = hardware.sas_controller
            if len(sas) > SAS_TARGETS.get(model, 0):
                raise LabError(f"{len(sas)} SAS disks do not fit on one {model} ({SAS_TARGETS.get(model, 0)} "
                               "targets); declare fewer sas disks in the topology")
            argv += ["-device", f"{model},id=scsi0"]
        for disk in disks:
            argv += [
                "-drive",
                f"if=none,id={disk.name},file={self.disk_path(disk.name)},format=raw,"
                f"cache={disk_cache},file.locking=off",
            ]
        if system_on_ahci:
            argv += ["-device", "ide-hd,bus=ahci0.0,drive=root,bootindex=0"]
        for port, disk in enumerate(sata, start=first_port):
            bus = f"ahci{port // AHCI_PORTS}.{port % AHCI_PORTS}"
            argv += [
                "-device",
                f"ide-hd,bus={bus},drive={disk.name},serial={disk.serial},share-rw=on" + _rotation(disk),
            ]
        for target, disk in enumerate(sas):
            argv += [
                "-device",
                f"scsi-hd,bus=scsi0.0,channel=0,scsi-id={target},lun=0,drive={disk.name},"
                f"serial={disk.serial},share-rw=on" + _rotation(disk),
            ]
        return argv

    def kernel_cmdline(self, host: Host, ssh_pubkey: str, root_device: str = "/dev/vda") -> str:
        """The image's identity command line plus the kernel arguments the stack's hardware asks for."""
        from lab.images.debian import kernel_cmdline

        identity = kernel_cmdline(
            host.name,
            self.hostids()[host.name],
            self.identity_interfaces(host),
            ssh_pubkey,
            root_device=root_device,
        )
        return " ".join([identity, *self.guest_hardware().kernel_args])


def smbios_uuid(lab_name: str, host: str) -> str:
    """A stable SMBIOS system UUID per lab and host. FreeBSD's loader exports it as smbios.system.uuid in
    lower case (sys/boot/i386/libi386/smbios.c), and etc/rc.d/hostid of 10.3 takes it when /etc/hostid is
    missing and sets kern.hostid to the first 8 hex digits of its md5, so VMs of one image differ."""
    digest = hashlib.sha256(f"beast-lab:{lab_name}:{host}:smbios-uuid".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _rotation(disk: Disk) -> str:
    return "" if disk.rotational else ",rotation_rate=1"
