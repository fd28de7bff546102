"""Read a topology TOML file into typed objects; every bad value is one line naming field and fix."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from lab.errors import TopologyError
from lab.topology.model import (
    Bus,
    Client,
    Disk,
    DiskRole,
    Drill,
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
PROVIDERS = ("auto", "qemu", "virtualbox")
STACKS = ("auto", "linux", "freebsd")
ARBITRATORS = ("paper", "takeover")
FAILMODES = ("wait", "continue", "panic")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
POOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,60}$")
GEOM_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
IQN_RE = re.compile(r"^iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[A-Za-z0-9.:_-]+)?$")
ZFS_SIZE_RE = re.compile(r"^(\d+)([KMGT]?)$")
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
        text = path.read_text()
    except FileNotFoundError:
        raise TopologyError(f"topology file {path} does not exist; pass an existing file with --topology") from None
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

    def topology(self, data: dict[str, Any]) -> Topology:
        top = _Table(self, data, "")
        lab = self.lab(top.table("lab", {}))
        networks = self.networks(top.table("networks"))
        hosts = self.hosts(top.table("hosts"), networks)
        disks = self.disks(top.table("disks"))
        pools = self.pools(top.table("pools"), hosts, disks)
        iscsi = self.iscsi(top.table("iscsi"))
        client = self.client(top.table("client"), hosts, pools)
        drill = self.drill(top.table("drill", {}))
        top.done()
        self.names_unique(pools, client)
        return Topology(lab, networks, hosts, disks, pools, iscsi, client, drill, source=self.source)

    def lab(self, t: _Table) -> LabSettings:
        name = t.take("name", str, "beast")
        if not NAME_RE.match(name):
            self.fail("lab.name", f"'{name}' is not a valid name", "use lowercase letters, digits and '-'")
        provider = t.take("provider", str, "auto")
        if provider not in PROVIDERS:
            self.fail("lab.provider", f"'{provider}' is not a provider", f"use one of {', '.join(PROVIDERS)}")
        stack = t.take("stack", str, "auto")
        if stack not in STACKS:
            self.fail("lab.stack", f"'{stack}' is not a stack", f"use one of {', '.join(STACKS)}")
        boot_timeout = t.take("boot_timeout_s", int, 300)
        if boot_timeout < 10:
            self.fail("lab.boot_timeout_s", f"{boot_timeout} is too short", "use 10 seconds or more")
        arbitrator = t.take("arbitrator", str, "paper")
        if arbitrator not in ARBITRATORS:
            self.fail("lab.arbitrator", f"'{arbitrator}' is not an arbitrator mode",
                      f"use one of {', '.join(ARBITRATORS)}")
        t.done()
        return LabSettings(name, provider, stack, boot_timeout, arbitrator)

    def networks(self, t: _Table) -> dict[str, Network]:
        networks: dict[str, Network] = {}
        for name in list(t.data):
            n = t.table(name)
            where = f"networks.{name}.cidr"
            cidr_text = n.take("cidr", str)
            try:
                cidr = ipaddress.IPv4Network(cidr_text, strict=True)
            except ValueError as err:
                self.fail(where, f"'{cidr_text}' is not an IPv4 network ({err})", "write it like 192.168.56.0/24")
            if cidr.prefixlen > 30:
                self.fail(where, f"'{cidr_text}' has no room for hosts", "use a prefix of /30 or shorter")
            for other in networks.values():
                if cidr.overlaps(other.cidr):
                    self.fail(where, f"{cidr} overlaps network '{other.name}' ({other.cidr})",
                              "give each network its own range")
            networks[name] = Network(name, cidr, n.take("description", str, ""))
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
            if not NAME_RE.match(name):
                self.fail(f"hosts.{name}", "is not a valid host name", "use lowercase letters, digits and '-'")
            role_text = h.take("role", str)
            if role_text not in Role.__members__.values():
                self.fail(f"hosts.{name}.role", f"'{role_text}' is not a role", "use controller or client")
            role = Role(role_text)
            memory = h.take("memory_mb", int)
            if memory < MIN_MEMORY_MB[role]:
                self.fail(f"hosts.{name}.memory_mb", f"{memory} is below the paper's minimum for a {role}",
                          f"use {MIN_MEMORY_MB[role]} or more")
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
            if not NAME_RE.match(name):
                self.fail(f"disks.{name}", "is not a valid disk name", "use lowercase letters, digits and '-'")
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
            if size > 1 << 20:
                self.fail(f"disks.{name}.size_mb", f"{size} is larger than a lab needs",
                          "use at most 1048576 (1 TiB); shared disks are fully allocated")
            rotational = d.take("rotational", bool, role is DiskRole.DATA)
            d.done()
            disks[name] = Disk(name, role, Bus(bus_text), size, rotational)
        if not disks:
            self.fail("disks", "is empty", "declare the shared data and cache disks")
        return disks

    def pools(self, t: _Table, hosts: dict[str, Host], disks: dict[str, Disk]) -> dict[str, Pool]:
        pools: dict[str, Pool] = {}
        used_by: dict[str, str] = {}
        for name in list(t.data):
            p = t.table(name)
            if not POOL_RE.match(name):
                self.fail(f"pools.{name}", "is not a valid ZFS pool name",
                          "start with a letter; use letters, digits, '_', '-', '.', ':'")
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
            if not GEOM_NAME_RE.match(arbitrator):
                self.fail(f"pools.{name}.arbitrator", f"'{arbitrator}' is not a valid device name",
                          "use letters, digits and '_'")
            zvol = self.zvol(p.table("zvol"), name)
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
        if not re.match(r"^[A-Za-z0-9_.-]+$", name):
            self.fail(f"pools.{pool}.zvol.name", f"'{name}' is not a valid dataset name", "use letters and digits")
        size = t.take("size", str)
        match = ZFS_SIZE_RE.match(size)
        if not match:
            self.fail(f"pools.{pool}.zvol.size", f"'{size}' is not a size", "write it the way zfs does, like 120M")
        t.done()
        size_bytes = int(match.group(1)) * ZFS_SIZE_UNITS[match.group(2)]
        if size_bytes < 16 << 20:
            self.fail(f"pools.{pool}.zvol.size", f"{size} is too small for a filesystem", "use 16M or more")
        return Zvol(name, size, size_bytes)

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
            if not IQN_RE.match(value):
                self.fail(f"iscsi.{key}", f"'{value}' is not an iSCSI qualified name",
                          "write it like iqn.2016-01.local.sss.private:target0")
            names[key] = value
        t.done()
        if names["private_target"] == names["public_target"]:
            self.fail("iscsi.public_target", "is the same as private_target", "give the two targets different names")
        return Iscsi(**names)

    def client(self, t: _Table, hosts: dict[str, Host], pools: dict[str, Pool]) -> Client:
        host = t.take("host", str)
        if host not in hosts or hosts[host].role is not Role.CLIENT:
            self.fail("client.host", f"'{host}' is not a client host",
                      f"use one of {', '.join(h for h in hosts if hosts[h].role is Role.CLIENT)}")
        stripe = t.take("stripe", str, "ZDATA")
        if not GEOM_NAME_RE.match(stripe):
            self.fail("client.stripe", f"'{stripe}' is not a valid device name", "use letters, digits and '_'")
        mountpoint = t.take("mountpoint", str, "/storage")
        if not re.match(r"^/[A-Za-z0-9_./-]*[A-Za-z0-9_]$", mountpoint) or ".." in mountpoint:
            self.fail("client.mountpoint", f"'{mountpoint}' is not an absolute path", "write it like /storage")
        entries = t.take("multipaths", list)
        multipaths = []
        for i, entry in enumerate(entries):
            m = _Table(self, entry, f"client.multipaths[{i}]")
            name = m.take("name", str)
            if not GEOM_NAME_RE.match(name):
                self.fail(f"client.multipaths[{i}].name", f"'{name}' is not a valid device name",
                          "use letters, digits and '_'")
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

    def drill(self, t: _Table) -> Drill:
        copy_size = t.take("copy_size_mb", int, 96)
        if not 1 <= copy_size <= 1 << 16:
            self.fail("drill.copy_size_mb", f"{copy_size} is out of range", "use 1 to 65536")
        kill_after = t.take("kill_after_s", float, 3.0)
        if kill_after < 0:
            self.fail("drill.kill_after_s", f"{kill_after} is negative", "use 0 or more seconds")
        interval = t.take("probe_interval_s", float, 0.5)
        if not 0.05 <= interval <= 60:
            self.fail("drill.probe_interval_s", f"{interval} is out of range", "use 0.05 to 60 seconds")
        t.done()
        return Drill(copy_size, kill_after, interval)

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
