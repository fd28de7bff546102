"""The names FreeBSD 10.3's GENERIC kernel gives the disks and NICs of a qemu command line, offline.

This machine cannot boot FreeBSD, so the qemu provider's FreeBSD hardware is checked against this model
instead, and the model is as strict as the real pair: QEMU refuses what it refuses (a port or target out of
range, a bus or drive that does not exist, one used twice), and a device 10.3's GENERIC has no driver for,
or that would not get the names the stack's plan uses, is refused with the reason.

What it models, and where from:

- Drivers in GENERIC (sys/amd64/conf/GENERIC of stable/10, as released in 10.3 and 10.4): ahci, mpt, sym,
  esp, mfi, virtio, virtio_pci, virtio_blk, virtio_scsi, vtnet, em; no pvscsi (FreeBSD 13), no virtio_random.
- Attach order: q35 gives ``-device`` PCI devices slots 1, 2, ... in command-line order; its own ICH9 AHCI
  sits at 00:1f.2, after them. FreeBSD's pci(4) probes slots in order, so units (ahci0, em0, ...) follow.
- CAM: each AHCI port is a bus; ada units go controller by controller, port by port, and an empty port takes
  no number; da units go SCSI controller by controller, target by target (the stack's iSCSI disks follow).
- em(4) drives QEMU's e1000 (82540EM), e1000-82545em and e1000e (82574L); vtnet(4) virtio-net.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.errors import LabError

AHCI_PORTS = 6
"""QEMU's ich9-ahci has 6 ports (hw/ide/ich.c); ``bus=<id>.<port>`` beyond them is refused."""
SCSI_LIMITS = {"mptsas1068": (7, 1), "virtio-scsi-pci": (255, 16384), "lsi53c895a": (7, 1),
               "lsi53c810": (7, 1), "am53c974": (7, 8)}
"""(highest target, LUN count) QEMU accepts per SCSI controller model (hw/scsi/*.c ``SCSIBusInfo``)."""
SCSI_DRIVERS = {"mptsas1068": "mpt", "virtio-scsi-pci": "virtio_scsi", "lsi53c895a": "sym", "lsi53c810": "sym",
                "am53c974": "esp"}
"""SCSI controllers whose disks FreeBSD 10.3 names da<N>."""
NIC_DRIVERS = {"e1000": "em", "e1000-82545em": "em", "e1000e": "em", "virtio-net-pci": "vtnet"}
REFUSED = {
    "megasas": "mfi(4) drives QEMU's MegaRAID SAS 1078, but it shows logical volumes as mfid<N>, not da<N>",
    "megasas-gen2": "mfi(4) drives QEMU's MegaRAID SAS 2108, but it shows logical volumes as mfid<N>, not da<N>",
    "pvscsi": "FreeBSD 10.3 has no pvscsi driver (pvscsi(4) arrived in FreeBSD 13)",
    "nvme": "nvme(4)/nvd(4) name its disks nvd<N>, not ada<N> or da<N>",
    "virtio-blk-pci": "virtio_blk(4) names its disks vtbd<N>, not ada<N> or da<N>",
}
UNATTACHED = {"virtio-rng-pci"}
"""PCI devices 10.3's GENERIC has no driver for that stay harmlessly unattached (no virtio_random in it)."""
NON_PCI = {"isa-serial"}


@dataclass
class FreeBsdNames:
    """What FreeBSD 10.3 would call each ``-drive`` id and ``-netdev`` id of one VM."""

    disks: dict[str, str] = field(default_factory=dict)
    nics: dict[str, str] = field(default_factory=dict)
    boot_disk: str | None = None
    """The name of the disk with ``bootindex=0``."""
    unattached: list[str] = field(default_factory=list)

    @property
    def next_da(self) -> str:
        """The name the first disk attached later (an iSCSI LUN) takes."""
        return f"da{sum(1 for name in self.disks.values() if name.startswith('da'))}"


@dataclass
class _Controller:
    model: str
    slot: int
    children: dict[tuple[int, int], str] = field(default_factory=dict)
    """(port or target, lun) -> drive id."""


def freebsd_names(argv: list[str]) -> FreeBsdNames:
    """The names FreeBSD 10.3 would give this qemu command line's disks and NICs; LabError if QEMU would
    refuse the command line or FreeBSD would not name a device as the stack expects."""
    machine = _values(argv, "-machine")
    if machine[:1] != ["q35"]:
        raise LabError(f"the FreeBSD naming model knows the q35 machine only, not {machine or 'the default'}")
    drives = {_options(v)[1].get("id") for v in _values(argv, "-drive")}
    netdevs = {_options(v)[1].get("id") for v in _values(argv, "-netdev")}
    controllers: dict[str, _Controller] = {"ide": _Controller("ich9-ahci", 31)}
    nics: list[tuple[int, str, str]] = []
    used: set[str] = set()
    names = FreeBsdNames()
    boot_drive = None
    slot = 0
    for value in _values(argv, "-device"):
        model, opts = _options(value)
        if model in ("ide-hd", "scsi-hd"):
            drive = _attach(model, opts, controllers, drives, used)
            if opts.get("bootindex") == "0":
                boot_drive = drive
            continue
        if model in NON_PCI:
            continue
        slot += 1
        if model in REFUSED:
            raise LabError(f"-device {model}: {REFUSED[model]}")
        if model in UNATTACHED:
            names.unattached.append(model)
        elif model == "ich9-ahci" or model in SCSI_DRIVERS:
            controllers[_bus_id(opts, model)] = _Controller(model, slot)
        elif model in NIC_DRIVERS:
            netdev = opts.get("netdev")
            if netdev not in netdevs:
                raise LabError(f"-device {value}: no -netdev with id {netdev}; qemu refuses it")
            nics.append((slot, NIC_DRIVERS[model], netdev))
        else:
            raise LabError(f"-device {model}: the FreeBSD 10.3 naming model knows no driver for it")
    units: dict[str, int] = {}
    for controller in sorted(controllers.values(), key=lambda c: c.slot):
        prefix = "ada" if controller.model == "ich9-ahci" else "da"
        for _, drive in sorted(controller.children.items()):
            names.disks[drive] = f"{prefix}{units.get(prefix, 0)}"
            units[prefix] = units.get(prefix, 0) + 1
    for _, driver, netdev in sorted(nics):
        names.nics[netdev] = f"{driver}{units.get(driver, 0)}"
        units[driver] = units.get(driver, 0) + 1
    names.boot_disk = names.disks.get(boot_drive) if boot_drive else None
    return names


def _attach(model: str, opts: dict[str, str], controllers: dict[str, _Controller], drives: set[str | None],
            used: set[str]) -> str:
    """One disk on its controller's port or target, refused where QEMU refuses it."""
    drive, bus = opts.get("drive"), opts.get("bus", "")
    if drive not in drives:
        raise LabError(f"{model} drive={drive}: no -drive with that id; qemu refuses it")
    if drive in used:
        raise LabError(f"{model} drive={drive}: the drive is attached twice; qemu refuses it")
    used.add(drive)
    bus_id, _, number = bus.rpartition(".")
    controller = controllers.get(bus_id)
    if model == "ide-hd":
        if controller is None or controller.model != "ich9-ahci" or not number.isdigit():
            raise LabError(f"ide-hd bus={bus}: no AHCI port of that name (declare its ich9-ahci first)")
        position = (int(number), 0)
        if position[0] >= AHCI_PORTS:
            raise LabError(f"ide-hd bus={bus}: an ich9-ahci has ports 0-{AHCI_PORTS - 1}")
    else:
        if controller is None or controller.model not in SCSI_DRIVERS or number != "0":
            raise LabError(f"scsi-hd bus={bus}: no SCSI controller bus of that name (declare it first)")
        highest, luns = SCSI_LIMITS[controller.model]
        target, lun = int(opts.get("scsi-id", "0")), int(opts.get("lun", "0"))
        if target > highest or lun >= luns:
            raise LabError(f"scsi-hd scsi-id={target},lun={lun}: {controller.model} takes targets 0-{highest} "
                           f"and {luns} LUN(s) each; qemu refuses it")
        position = (target, lun)
    if position in controller.children:
        raise LabError(f"{model} bus={bus}: that port or target is already in use; qemu refuses it")
    controller.children[position] = drive
    return drive


def _bus_id(opts: dict[str, str], model: str) -> str:
    if "id" not in opts:
        raise LabError(f"-device {model} has no id, so no disk can name its bus")
    return opts["id"]


def _values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _options(value: str) -> tuple[str, dict[str, str]]:
    """``model,key=value,...`` (a -drive/-netdev value's first item may be a key=value too)."""
    first, *rest = value.split(",")
    opts = dict(item.split("=", 1) for item in rest if "=" in item)
    if "=" in first:
        key, val = first.split("=", 1)
        opts[key] = val
        first = ""
    return first, opts


__all__ = ["FreeBsdNames", "freebsd_names"]
