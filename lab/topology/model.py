"""The lab as typed, validated data: what every other part of BeaST Lab reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Bus", "Client", "Disk", "DiskRole", "DrillSettings", "Host", "Iscsi", "LabSettings", "Multipath", "Network",
    "Pool", "Role", "Topology", "Zvol",
]


class Role(StrEnum):
    CONTROLLER = "controller"
    CLIENT = "client"


class DiskRole(StrEnum):
    DATA = "data"
    CACHE = "cache"


class Bus(StrEnum):
    SATA = "sata"
    SAS = "sas"


@dataclass(frozen=True)
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    description: str = ""


@dataclass(frozen=True)
class Host:
    name: str
    role: Role
    memory_mb: int
    cpus: int
    addresses: dict[str, ipaddress.IPv4Address]
    """Network name -> address, in NIC order (the first is the first guest NIC after management)."""

    def address(self, network: str) -> str:
        return str(self.addresses[network])


@dataclass(frozen=True)
class Disk:
    name: str
    role: DiskRole
    bus: Bus
    size_mb: int
    rotational: bool

    @property
    def serial(self) -> str:
        """Stable serial every provider gives the disk, so guests can name it under /dev/disk/by-id."""
        return f"beast-{self.name}"


@dataclass(frozen=True)
class Zvol:
    name: str
    size: str
    size_bytes: int


@dataclass(frozen=True)
class Pool:
    name: str
    owner: str
    data: tuple[str, ...]
    log: str
    cache: str
    failmode: str
    arbitrator: str
    zvol: Zvol
    properties: dict[str, str]

    @property
    def zvol_path(self) -> str:
        """The zvol's dataset name, e.g. ``ctrl-a_m0/v0``."""
        return f"{self.name}/{self.zvol.name}"

    @property
    def disks(self) -> tuple[str, ...]:
        return (*self.data, self.log, self.cache)


@dataclass(frozen=True)
class Multipath:
    name: str
    pool: str


@dataclass(frozen=True)
class Client:
    host: str
    stripe: str
    mountpoint: str
    multipaths: tuple[Multipath, ...]


@dataclass(frozen=True)
class Iscsi:
    private_target: str
    public_target: str


@dataclass(frozen=True)
class DrillSettings:
    """The topology's [drill] table: how big the client's copy is, when the fault strikes, how often the probe
    writes (the drill's own state is ``lab.drill``'s)."""

    copy_size_mb: int
    kill_after_s: float
    probe_interval_s: float


@dataclass(frozen=True)
class LabSettings:
    name: str
    provider: str
    stack: str
    boot_timeout_s: int
    arbitrator: str = "paper"
    """How a controller serves its peer's volume: ``paper`` (both pools imported on both controllers, the
    arbitrator map has both paths from the start) or ``takeover`` (each pool imported by its owner only,
    multihost=on; the survivor imports the failed controller's pool with -f after fencing it)."""


@dataclass(frozen=True)
class Topology:
    lab: LabSettings
    networks: dict[str, Network]
    hosts: dict[str, Host]
    disks: dict[str, Disk]
    pools: dict[str, Pool]
    iscsi: Iscsi
    client: Client
    drill: DrillSettings
    source: str = field(default="", compare=False)
    """Where the topology was read from, for messages."""

    @property
    def controllers(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts.values() if h.role is Role.CONTROLLER)

    @property
    def client_host(self) -> Host:
        return self.hosts[self.client.host]

    def peer(self, controller: str) -> Host:
        """The other controller of the pair."""
        return next(h for h in self.controllers if h.name != controller)

    def pool_of(self, controller: str) -> Pool:
        """The pool a controller owns."""
        return next(p for p in self.pools.values() if p.owner == controller)

    def disks_on(self, bus: Bus) -> tuple[Disk, ...]:
        """Disks of one controller bus in port order (the order they are declared)."""
        return tuple(d for d in self.disks.values() if d.bus is bus)
