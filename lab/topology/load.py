"""Read a topology TOML file into typed objects; every bad value is one line naming field and fix."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from lab.errors import TopologyError
from lab.registry import ARBITRATORS, provider_problem, stack_problem
from lab.topology import rules
from lab.topology.model import (
    Bus,
    Client,
    Disk,
    DiskRole,
    DrillSettings,
    Host,
    Iscsi,
    LabSettings,
    Multipath,
    Network,
    Pool,
    Role,
    Topology,
    Zvol,
)

MIN_MEMORY_MB = {Role.CONTROLLER: 2048, Role.CLIENT: 512}
MIN_DISK_MB = {DiskRole.DATA: 100, DiskRole.CACHE: 64}
FAILMODES = ("wait", "continue", "panic")
ZFS_SIZE_RE = re.compile(r"([0-9]{1,15})([KMGT]?)")
ZFS_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
ZFS_PROPERTIES = {
    "sync": ("standard", "always", "disabled"),
    "primarycache": ("all", "none", "metadata"),
    "secondarycache": ("all", "none", "metadata"),
}


def default_topology_path() -> Path:
    """The paper's lab, shipped with the package."""
    return Path(str(resources.files("lab.topology").joinpath("paper.toml")))


def load_topology(path: str | Path | None = None) -> Topology:
    """Load and validate a topology file (the paper's lab when ``path`` is None)."""
    path = Path(path) if path else default_topology_path()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TopologyError(f"topology file {path} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
                            f"offset {err.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise TopologyError(f"topology file {path} does not exist; pass an existing file with --topology") from None
    except IsADirectoryError:
        raise TopologyError(f"topology file {path} is a directory; pass a .toml file with --topology") from None
    except OSError as err:
        raise TopologyError(f"topology file {path} cannot be read ({err.strerror}); check its permissions") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise TopologyError(f"topology {path}: not valid TOML ({err}); fix the syntax there") from None
    return topology_from_dict(data, source=str(path))


def topology_from_dict(data: dict[str, Any], source: str = "<dict>") -> Topology:
    """Validate already-parsed TOML data."""
    return _Reader(source).topology(data)


def check_virtualbox_addresses(topology: Topology) -> None:
    """TopologyError when a host has an address VirtualBox keeps for the host (a lab that chose VirtualBox
    by ``auto`` or ``--provider`` after loading)."""
    _Reader(topology.source or "<dict>").host_side_addresses_free(topology.hosts, topology.networks)


class _Table:
    """One TOML table being read: takes known keys, and complains about the rest by name."""

    def __init__(self, reader: _Reader, value: Any, path: str):
        if not isinstance(value, dict):
            reader.fail(path, f"must be a table, not {_kind(value)}", "write it as [section] or { key = value }")
        self.reader, self.data, self.path = reader, dict(value), path

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        where = f"{self.path}.{key}" if self.path else key
        if key not in self.data:
            if default is ...:
                self.reader.fail(where, "is missing", f"add {key} = ... to [{self.path or 'top level'}]")
            return default
        value = self.data.pop(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool:
            self.reader.fail(where, f"must be {_type_name(kind)}, not a boolean", "use a value of that type")
        if not isinstance(value, kind):
            self.reader.fail(where, f"must be {_type_name(kind)}, not {_kind(value)}", "use a value of that type")
        return value

    def table(self, key: str, default: Any = ...) -> _Table:
        return _Table(self.reader, self.take(key, dict, default), f"{self.path}.{key}" if self.path else key)

    def done(self) -> None:
        if self.data:
            key = sorted(self.data)[0]
            self.reader.fail(f"{self.path}.{key}" if self.path else key, "is not a known field",
                             "remove it or check its spelling")


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str, fix: str) -> None:
        message = f"topology {self.source}: {field} {problem}; {fix}"
        raise TopologyError(message.replace("\r", "\\r").replace("\n", "\\n"))  # a value may hold newlines

    def check(self, field: str, problem: rules.Problem) -> None:
        if problem:
            self.fail(field, *problem)

    def topology(self, data: dict[str, Any]) -> Topology:
        top = _Table(self, data, "")
        lab = self.lab(top.table("lab", {}))
        networks = self.networks(top.table("networks"))
        hosts = self.hosts(top.table("hosts"), networks)
        if lab.provider == "virtualbox":
            self.host_side_addresses_free(hosts, networks)
        disks = self.disks(top.table("disks"))
        pools = self.pools(top.table("pools"), hosts, disks)
        iscsi = self.iscsi(top.table("iscsi"))
        client = self.client(top.table("client"), hosts, pools)
        drill = self.drill(top.table("drill", {}))
        top.done()
        self.names_unique(pools, client)
        stripe_bytes = sum(p.zvol.size_bytes for p in pools.values())
        if drill.copy_size_mb << 20 >= stripe_bytes:
            self.fail("drill.copy_size_mb", f"{drill.copy_size_mb} MiB does not fit the client's stripe "
                      f"({stripe_bytes >> 20} MiB of volumes)", "copy less, or give the pools larger volumes")
        return Topology(lab, networks, hosts, disks, pools, iscsi, client, drill, source=self.source)

    def lab(self, t: _Table) -> LabSettings:
        name = t.take("name", str, "beast")
        self.check("lab.name", rules.name_problem(name, "lab"))
        provider = t.take("provider", str, "auto")
        self.check("lab.provider", provider_problem(provider))
        stack = t.take("stack", str, "auto")
        self.check("lab.stack", stack_problem(stack))
        boot_timeout = t.take("boot_timeout_s", int, 300)
        if boot_timeout < 10:
            self.fail("lab.boot_timeout_s", f"{boot_timeout} is too short", "use 10 seconds or more")
        if boot_timeout > rules.MAX_BOOT_TIMEOUT_S:
            self.fail("lab.boot_timeout_s", f"{boot_timeout} is longer than any boot",
                      f"use at most {rules.MAX_BOOT_TIMEOUT_S} seconds")
        arbitrator = t.take("arbitrator", str, "paper")
        if arbitrator not in ARBITRATORS:
            self.fail("lab.arbitrator", f"'{arbitrator}' is not an arbitrator mode",
                      f"use one of {', '.join(ARBITRATORS)}")
        t.done()
        return LabSettings(name, provider, stack, boot_timeout, arbitrator)

    def networks(self, t: _Table) -> dict[str, Network]:
        networks: dict[str, Network] = {}
        for name in list(t.data):
            self.check(f"networks.{name}", rules.network_problem(name))
            n = t.table(name)
            where = f"networks.{name}.cidr"
            cidr_text = n.take("cidr", str)
            try:
                cidr = ipaddress.IPv4Network(cidr_text, strict=True)
            except ValueError as err:
                self.fail(where, f"'{cidr_text}' is not an IPv4 network ({err})", "write it like 192.168.56.0/24")
            if cidr.prefixlen > 30:
                self.fail(where, f"'{cidr_text}' has no room for hosts", "use a prefix of /30 or shorter")
            self.check(where, rules.network_range_problem(cidr))
            for other in networks.values():
                if cidr.overlaps(other.cidr):
                    self.fail(where, f"{cidr} overlaps network '{other.name}' ({other.cidr})",
                              "give each network its own range")
            description = n.take("description", str, "")
            self.check(f"networks.{name}.description", rules.text_problem(description))
            networks[name] = Network(name, cidr, description)
            n.done()
        for required in ("private", "public"):
            if required not in networks:
                self.fail(f"networks.{required}", "is missing",
                          f"the BeaST needs a '{required}' network: add [networks.{required}] with a cidr")
        return networks

    def hosts(self, t: _Table, networks: dict[str, Network]) -> dict[str, Host]:
        hosts: dict[str, Host] = {}
        seen_addresses: dict[ipaddress.IPv4Address, str] = {}
        for name in list(t.data):
            h = t.table(name)
            self.check(f"hosts.{name}", rules.name_problem(name, "host"))
            role_text = h.take("role", str)
            if role_text not in Role.__members__.values():
                self.fail(f"hosts.{name}.role", f"'{role_text}' is not a role", "use controller or client")
            role = Role(role_text)
            memory = h.take("memory_mb", int)
            if memory < MIN_MEMORY_MB[role]:
                self.fail(f"hosts.{name}.memory_mb", f"{memory} is below the paper's minimum for a {role}",
                          f"use {MIN_MEMORY_MB[role]} or more")
            if memory > rules.MAX_MEMORY_MB:
                self.fail(f"hosts.{name}.memory_mb", f"{memory} is more than a lab VM can be given",
                          f"use at most {rules.MAX_MEMORY_MB}")
            cpus = h.take("cpus", int, 1)
            if not 1 <= cpus <= 64:
                self.fail(f"hosts.{name}.cpus", f"{cpus} is out of range", "use 1 to 64")
            addr_table = h.table("addresses")
            addresses: dict[str, ipaddress.IPv4Address] = {}
            for net_name in list(addr_table.data):
                where = f"hosts.{name}.addresses.{net_name}"
                text = addr_table.take(net_name, str)
                if net_name not in networks:
                    self.fail(where, f"names unknown network '{net_name}'",
                              f"use one of {', '.join(networks)}")
                try:
                    address = ipaddress.IPv4Address(text)
                except ValueError:
                    self.fail(where, f"'{text}' is not an IPv4 address", "write it like 192.168.56.10")
                cidr = networks[net_name].cidr
                if address not in cidr or address in (cidr.network_address, cidr.broadcast_address):
                    self.fail(where, f"{address} is not a host address of {net_name} ({cidr})",
                              f"pick an address inside {cidr}")
                if address in seen_addresses:
                    self.fail(where, f"{address} is already used by {seen_addresses[address]}",
                              "give every NIC its own address")
                seen_addresses[address] = f"hosts.{name}.addresses.{net_name}"
                addresses[net_name] = address
            h.done()
            required = ("private", "public") if role is Role.CONTROLLER else ("public",)
            for net_name in required:
                if net_name not in addresses:
                    self.fail(f"hosts.{name}.addresses.{net_name}", "is missing",
                              f"a {role} needs an address on the {net_name} network")
            hosts[name] = Host(name, role, memory, cpus, addresses)
        controllers = [h for h in hosts.values() if h.role is Role.CONTROLLER]
        if len(controllers) != 2:
            self.fail("hosts", f"has {len(controllers)} controllers",
                      "the BeaST is a dual-controller system: declare exactly two hosts with role = \"controller\"")
        if not any(h.role is Role.CLIENT for h in hosts.values()):
            self.fail("hosts", "has no client", "declare a host with role = \"client\"")
        return hosts

    def disks(self, t: _Table) -> dict[str, Disk]:
        disks: dict[str, Disk] = {}
        for name in list(t.data):
            d = t.table(name)
            self.check(f"disks.{name}", rules.disk_problem(name))
            role_text = d.take("role", str)
            if role_text not in DiskRole.__members__.values():
                self.fail(f"disks.{name}.role", f"'{role_text}' is not a disk role", "use data or cache")
            role = DiskRole(role_text)
            bus_text = d.take("bus", str)
            if bus_text not in Bus.__members__.values():
                self.fail(f"disks.{name}.bus", f"'{bus_text}' is not a bus", "use sata or sas")
            size = d.take("size_mb", int)
            if size < MIN_DISK_MB[role]:
                self.fail(f"disks.{name}.size_mb", f"{size} is below the paper's minimum for a {role} disk",
                          f"use {MIN_DISK_MB[role]} or more")
            if size > rules.MAX_DISK_MB:
                self.fail(f"disks.{name}.size_mb", f"{size} is larger than a lab needs",
                          f"use at most {rules.MAX_DISK_MB} (1 TiB); shared disks are fully allocated")
            rotational = d.take("rotational", bool, role is DiskRole.DATA)
            d.done()
            disks[name] = Disk(name, role, Bus(bus_text), size, rotational)
        if not disks:
            self.fail("disks", "is empty", "declare the shared data and cache disks")
        if len(disks) > rules.MAX_DISKS:
            self.fail("disks", f"declares {len(disks)} disks", f"use at most {rules.MAX_DISKS} shared disks")
        total = sum(d.size_mb for d in disks.values())
        if total > rules.MAX_TOTAL_DISK_MB:
            self.fail("disks", f"add up to {total} MB, more than the {rules.MAX_TOTAL_DISK_MB} MB (1 TiB) a lab's "
                      "fully allocated shared disks may take on the host", "use fewer or smaller disks")
        return disks

    def pools(self, t: _Table, hosts: dict[str, Host], disks: dict[str, Disk]) -> dict[str, Pool]:
        pools: dict[str, Pool] = {}
        used_by: dict[str, str] = {}
        for name in list(t.data):
            p = t.table(name)
            self.check(f"pools.{name}", rules.pool_problem(name))
            owner = p.take("owner", str)
            if owner not in hosts or hosts[owner].role is not Role.CONTROLLER:
                self.fail(f"pools.{name}.owner", f"'{owner}' is not a controller",
                          f"use one of {', '.join(h for h in hosts if hosts[h].role is Role.CONTROLLER)}")
            data = p.take("data", list)
            if not data or not all(isinstance(d, str) for d in data):
                self.fail(f"pools.{name}.data", "must be a non-empty list of disk names", 'write data = ["d00", "d01"]')
            log = p.take("log", str)
            cache = p.take("cache", str)
            members = [("data", d) for d in data] + [("log", log), ("cache", cache)]
            for field, disk in members:
                where = f"pools.{name}.{field}"
                if disk not in disks:
                    self.fail(where, f"names unknown disk '{disk}'", f"use one of {', '.join(disks)}")
                wanted = DiskRole.DATA if field == "data" else DiskRole.CACHE
                if disks[disk].role is not wanted:
                    self.fail(where, f"disk '{disk}' is a {disks[disk].role} disk", f"use a {wanted} disk")
                if disk in used_by:
                    self.fail(where, f"disk '{disk}' is already used by {used_by[disk]}",
                              "give every pool member its own disk")
                used_by[disk] = f"pools.{name}.{field}"
            failmode = p.take("failmode", str, "continue")
            if failmode not in FAILMODES:
                self.fail(f"pools.{name}.failmode", f"'{failmode}' is not a failmode",
                          f"use one of {', '.join(FAILMODES)}")
            default_arbitrator = owner.upper().replace("-", "_") + "_BACK"
            arbitrator = p.take("arbitrator", str, default_arbitrator)
            self.check(f"pools.{name}.arbitrator", rules.device_problem(arbitrator))
            zvol = self.zvol(p.table("zvol"), name)
            self.zvol_fits(name, zvol, sum(disks[d].size_mb for d in data) << 20)
            properties = self.properties(p.table("properties", {}), name)
            p.done()
            pools[name] = Pool(name, owner, tuple(data), log, cache, failmode, arbitrator, zvol, properties)
        owners = [p.owner for p in pools.values()]
        for host in (h for h in hosts.values() if h.role is Role.CONTROLLER):
            count = owners.count(host.name)
            if count != 1:
                self.fail("pools", f"gives controller {host.name} {count} pools",
                          "give each controller exactly one pool")
        return pools

    def zvol(self, t: _Table, pool: str) -> Zvol:
        name = t.take("name", str, "v0")
        self.check(f"pools.{pool}.zvol.name", rules.dataset_problem(name))
        size = t.take("size", str)
        match = ZFS_SIZE_RE.fullmatch(size)
        if not match:
            self.fail(f"pools.{pool}.zvol.size", f"'{size}' is not a size", "write it the way zfs does, like 120M")
        t.done()
        size_bytes = int(match.group(1)) * ZFS_SIZE_UNITS[match.group(2)]
        if size_bytes < 16 << 20:
            self.fail(f"pools.{pool}.zvol.size", f"{size} is too small for a filesystem", "use 16M or more")
        if size_bytes % rules.ZVOL_ALIGN:
            self.fail(f"pools.{pool}.zvol.size", f"{size} is not a whole number of MiB",
                      "write it in M, G or T, like 120M")
        return Zvol(name, size, size_bytes)

    def zvol_fits(self, pool: str, zvol: Zvol, capacity: int) -> None:
        slop = rules.slop_bytes(capacity)
        if zvol.size_bytes > capacity - slop:
            usable = (capacity - slop) >> 20
            self.fail(f"pools.{pool}.zvol.size", f"{zvol.size} is larger than the pool's data disks "
                      f"({capacity >> 20} MiB in all) hold once OpenZFS keeps its slop space: "
                      f"max(min({capacity >> 20} MiB / 32, 128 GiB), min({capacity >> 20} MiB / 2, 128 MiB)) = "
                      f"{slop >> 20} MiB, leaving {usable} MiB",
                      f"use {usable}M or less, or larger data disks")

    def host_side_addresses_free(self, hosts: dict[str, Host], networks: dict[str, Network]) -> None:
        """VirtualBox gives the host the first address of each host-only network (hostonlyif ipconfig)."""
        for host in hosts.values():
            for net_name, address in host.addresses.items():
                if address == networks[net_name].cidr.network_address + 1:
                    self.fail(f"hosts.{host.name}.addresses.{net_name}",
                              f"{address} is the address VirtualBox gives the host on the host-only network "
                              f"{net_name}", "give the VM another address of that network, like .10")

    def properties(self, t: _Table, pool: str) -> dict[str, str]:
        properties: dict[str, str] = {}
        for key in list(t.data):
            if key not in ZFS_PROPERTIES:
                self.fail(f"pools.{pool}.properties.{key}", "is not a property the lab sets",
                          f"use {', '.join(ZFS_PROPERTIES)}")
            value = t.take(key, str)
            if value not in ZFS_PROPERTIES[key]:
                self.fail(f"pools.{pool}.properties.{key}", f"'{value}' is not a valid value",
                          f"use one of {', '.join(ZFS_PROPERTIES[key])}")
            properties[key] = value
        return properties

    def iscsi(self, t: _Table) -> Iscsi:
        names = {}
        for key in ("private_target", "public_target"):
            value = t.take(key, str)
            self.check(f"iscsi.{key}", rules.iqn_problem(value))
            names[key] = value
        t.done()
        if rules.iqn_key(names["private_target"]) == rules.iqn_key(names["public_target"]):
            self.fail("iscsi.public_target", "is the same iSCSI name as private_target (iSCSI names ignore case, "
                      "RFC 3722)", "give the two targets different names")
        return Iscsi(**names)

    def client(self, t: _Table, hosts: dict[str, Host], pools: dict[str, Pool]) -> Client:
        host = t.take("host", str)
        if host not in hosts or hosts[host].role is not Role.CLIENT:
            self.fail("client.host", f"'{host}' is not a client host",
                      f"use one of {', '.join(h for h in hosts if hosts[h].role is Role.CLIENT)}")
        stripe = t.take("stripe", str, "ZDATA")
        self.check("client.stripe", rules.device_problem(stripe))
        mountpoint = t.take("mountpoint", str, "/storage")
        self.check("client.mountpoint", rules.mountpoint_problem(mountpoint))
        entries = t.take("multipaths", list)
        multipaths = []
        for i, entry in enumerate(entries):
            m = _Table(self, entry, f"client.multipaths[{i}]")
            name = m.take("name", str)
            self.check(f"client.multipaths[{i}].name", rules.device_problem(name))
            pool = m.take("pool", str)
            if pool not in pools:
                self.fail(f"client.multipaths[{i}].pool", f"names unknown pool '{pool}'",
                          f"use one of {', '.join(pools)}")
            m.done()
            multipaths.append(Multipath(name, pool))
        t.done()
        if sorted(m.pool for m in multipaths) != sorted(pools):
            self.fail("client.multipaths", "must have exactly one multipath per pool",
                      f"list one entry for each of {', '.join(pools)}")
        return Client(host, stripe, mountpoint, tuple(multipaths))

    def drill(self, t: _Table) -> DrillSettings:
        copy_size = t.take("copy_size_mb", int, 96)
        if not 1 <= copy_size <= 1 << 16:
            self.fail("drill.copy_size_mb", f"{copy_size} is out of range", "use 1 to 65536")
        kill_after = t.take("kill_after_s", float, 3.0)
        self.check("drill.kill_after_s", rules.finite_problem(kill_after, 0, rules.MAX_KILL_AFTER_S, "seconds"))
        interval = t.take("probe_interval_s", float, 0.5)
        self.check("drill.probe_interval_s", rules.finite_problem(interval, 0.05, 60, "seconds"))
        t.done()
        return DrillSettings(copy_size, kill_after, interval)

    def names_unique(self, pools: dict[str, Pool], client: Client) -> None:
        """Device names share one namespace on a controller or the client (/dev/multipath, /dev/stripe)."""
        seen: dict[str, str] = {}
        named = [(f"pools.{p.name}.arbitrator", p.arbitrator) for p in pools.values()]
        named += [(f"client.multipaths[{i}].name", m.name) for i, m in enumerate(client.multipaths)]
        named.append(("client.stripe", client.stripe))
        for field, name in named:
            if name in seen:
                self.fail(field, f"'{name}' is already used by {seen[name]}", "give every device its own name")
            seen[name] = field


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", int: "an integer", float: "a number",
            bool: "a boolean"}.get(type(value), type(value).__name__)


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_kind(k()) if k is not bool else "a boolean" for k in kinds)
