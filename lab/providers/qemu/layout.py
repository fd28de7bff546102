"""Where a qemu lab keeps its files, and the identities (hostids, MACs) it gives its hosts.

Every file lives in the lab directory (``<project or cwd>/.lab/<lab name>/`` by default)::

    lock                    flock held by up/down/start (the kernel drops it if the holder dies)
    state.json              hosts, pids, ports, accel, image hash: what `status`/`down`/`ssh` read
    ssh/id_ed25519{,.pub}   the lab's root key, passed to guests on the kernel command line
    disks/<disk>.raw        shared disks, fully allocated, attached to both controllers
    net/<network>/          a vde_switch's socket directory; net/<network>.{mgmt,pid} beside it
    vm/<host>/overlay.qcow2 the host's root disk over the cached base image
    vm/<host>/qemu.pid      written by qemu; launcher.pid: the qemu process we started (pre-daemonize)
    vm/<host>/qmp.sock, console.sock, console.log, qemu.log (what qemu printed while starting)
    fence/<host>.sock       the fence listener's end of each host's second UART (fence_virt's ttyS1)
    fence/listener.pid, requests.jsonl (one JSON line a fence request), fence.log, listener.out,
    fence/launch.json, topology.toml: what the listener needs to start a host again
    snapshots/<name>/       whole-lab snapshots (lab.providers.snapshot); kept by `down`

Pure paths and names over the topology: starts nothing, and knows nothing of guest software.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.labdir import inside
from lab.providers.qemu.state import STATE_VERSION, read_state
from lab.runfolder_io import replace_file
from lab.topology import Disk, Host, Role, Topology

MANAGEMENT_ADDRESS = "10.0.2.15/24"
"""The guest's address on QEMU's user network (slirp's default guest address)."""
QEMU_ID = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")
"""What qemu accepts as an object id (util/id.c: id_wellformed); a network name is its NIC's netdev id."""


def host_ids(lab_name: str, hosts: list[str]) -> dict[str, str]:
    """A distinct, deterministic 8-hex hostid per host (ZFS's multihost check needs them distinct)."""
    ids: dict[str, str] = {}
    for host in hosts:
        salt = 0
        while True:
            digest = hashlib.sha256(f"beast-lab:{lab_name}:{host}:{salt}".encode()).hexdigest()[:8]
            if digest not in ids.values() and digest not in ("00000000", "ffffffff"):
                break
            salt += 1
        ids[host] = digest
    return ids


def mac_address(lab_name: str, host_index: int, nic_index: int) -> str:
    """``52:54:00:<lab>:<host>:<nic>``: QEMU's local prefix, stable across runs, distinct in a lab."""
    lab_byte = hashlib.sha256(lab_name.encode()).digest()[0]
    return f"52:54:00:{lab_byte:02x}:{host_index + 1:02x}:{nic_index:02x}"


@dataclass(frozen=True)
class VmPaths:
    dir: Path
    overlay: Path
    pidfile: Path
    launcher_pidfile: Path
    qmp: Path
    console_socket: Path
    console_log: Path
    qemu_log: Path



class QemuLayout:
    """The lab directory's paths and the hosts' identities, for one topology."""

    topology: Topology
    lab_dir: Path

    # paths

    def path(self, *parts: str) -> Path:
        """A path in the lab directory, checked to stay inside it (lab.labdir.inside)."""
        return inside(self.lab_dir, self.lab_dir.joinpath(*parts))

    @property
    def state_path(self) -> Path:
        return self.path("state.json")

    @property
    def key_path(self) -> Path:
        return self.path("ssh", "id_ed25519")

    def disk_path(self, disk: str) -> Path:
        return self.path("disks", f"{disk}.raw")

    def switch_dir(self, network: str) -> Path:
        if not QEMU_ID.fullmatch(network):
            raise LabError(f"network name {network!r} cannot name a qemu netdev; use letters, digits, '.', '_' "
                           "or '-', starting with a letter")
        return self.path("net", network)

    def switch_mgmt(self, network: str) -> Path:
        return self.switch_dir(network).with_name(f"{network}.mgmt")

    def switch_pidfile(self, network: str) -> Path:
        return self.switch_dir(network).with_name(f"{network}.pid")

    def vm_paths(self, host: str) -> VmPaths:
        d = self.path("vm", host)
        return VmPaths(
            dir=d,
            overlay=d / "overlay.qcow2",
            pidfile=d / "qemu.pid",
            launcher_pidfile=d / "launcher.pid",
            qmp=d / "qmp.sock",
            console_socket=d / "console.sock",
            console_log=d / "console.log",
            qemu_log=d / "qemu.log",
        )

    def fence_socket(self, host: str) -> Path:
        return self.path("fence", f"{host}.sock")

    @property
    def fence_pidfile(self) -> Path:
        return self.path("fence", "listener.pid")

    def fence_log_path(self) -> Path:
        """The fence listener's JSON lines, one a request (lab.fence.log.read_fence_log reads them)."""
        return self.path("fence", "requests.jsonl")

    # identities

    def hostids(self) -> dict[str, str]:
        return host_ids(self.topology.lab.name, list(self.topology.hosts))

    def nic_macs(self, host: str) -> dict[str, str]:
        """``management`` and each network the host is on, in NIC order, with their MACs."""
        index = list(self.topology.hosts).index(host)
        networks = ["management", *self.topology.hosts[host].addresses]
        return {net: mac_address(self.topology.lab.name, index, i) for i, net in enumerate(networks)}

    def identity_interfaces(self, host: Host) -> list[tuple[str, str]]:
        macs = self.nic_macs(host.name)
        interfaces = [(macs["management"], MANAGEMENT_ADDRESS)]
        for network, address in host.addresses.items():
            prefix = self.topology.networks[network].cidr.prefixlen
            interfaces.append((macs[network], f"{address}/{prefix}"))
        return interfaces

    def shared_disks(self, host: Host) -> list[Disk]:
        return list(self.topology.disks.values()) if host.role is Role.CONTROLLER else []

    # state

    def load_state(self) -> dict[str, Any]:
        return read_state(self.lab_dir, self.state_path)

    def save_state(self, state: dict[str, Any]) -> None:
        state["version"] = STATE_VERSION
        state["updated_at"] = time.time()
        replace_file(self.lab_dir, self.state_path.name, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    def used_networks(self) -> list[str]:
        return [
            n for n in self.topology.networks if any(n in h.addresses for h in self.topology.hosts.values())
        ]

