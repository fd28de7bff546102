"""Running VBoxManage and reading what it prints: version, host-only interfaces, media, VM storage.

Also the host-only range rule of VirtualBox >= 6.1.28: on Linux, Solaris and macOS (before VirtualBox 7)
only 192.168.56.0/21 is allowed unless /etc/vbox/networks.conf lists more ranges, and the paper's public
192.168.55.0/24 is not in it, so the lab checks that file before Vagrant fails with a less helpful message.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError, MissingToolError
from lab.providers.virtualbox.compat import host_only_ranges_apply
from lab.providers.virtualbox.layout import host_only_create_commands, host_side_address, networks_conf_line
from lab.topology import Network, Topology

VBOXMANAGE = "VBoxManage"
VBOXMANAGE_INSTALL_HINT = "apt-get install -y virtualbox (or Oracle's virtualbox-7.0 package from virtualbox.org)"
NETWORKS_CONF = Path("/etc/vbox/networks.conf")
DEFAULT_HOST_ONLY_RANGES = (ipaddress.ip_network("192.168.56.0/21"),)
COMMAND_TIMEOUT_SECONDS = 120.0


class VBoxManageError(LabError):
    """A VBoxManage command failed; the message carries its last error line."""


Runner = Callable[[Sequence[str]], str]
"""Runs ``VBoxManage <argv>`` and returns its stdout; raises VBoxManageError on failure."""


@dataclass
class VBoxManage:
    """The real VBoxManage: found on PATH at first use, every call with a deadline."""

    program: str = VBOXMANAGE
    timeout: float = COMMAND_TIMEOUT_SECONDS

    def path(self) -> str:
        found = shutil.which(self.program)
        if found is None:
            raise MissingToolError(
                f"{self.program} is not on PATH, so the virtualbox provider cannot run; "
                f"install VirtualBox: {VBOXMANAGE_INSTALL_HINT}, or use --provider qemu"
            )
        return found

    def __call__(self, argv: Sequence[str]) -> str:
        command = [self.path(), *argv]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise VBoxManageError(f"`VBoxManage {' '.join(argv)}` did not finish within {self.timeout:.0f} s; "
                                  "check VirtualBox (`VBoxManage list runningvms`) and retry") from None
        if done.returncode != 0:
            raise VBoxManageError(f"`VBoxManage {' '.join(argv)}` failed: {last_error_line(done.stderr)}")
        return done.stdout


def last_error_line(stderr: str) -> str:
    """The most telling line of VBoxManage's error output (the first ``error:`` line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["no output"])[0]


# --- version and networks.conf ----------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int]:
    """``7.0.10_Debianr158379`` or ``6.1.38r153438`` -> (major, minor, patch)."""
    match = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise VBoxManageError(f"cannot read the VirtualBox version from {text.strip()!r}; check `VBoxManage --version`")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def allowed_host_only_ranges(conf_text: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Ranges networks.conf allows (``* <cidr> ...`` lines); the built-in default when there is no file."""
    if conf_text is None:
        return list(DEFAULT_HOST_ONLY_RANGES)
    ranges = []
    for line in conf_text.splitlines():
        words = line.split()
        if not words or words[0] != "*":
            continue
        for word in words[1:]:
            try:
                ranges.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return ranges


def check_host_only_ranges(topology: Topology, version: tuple[int, int, int], conf_text: str | None,
                           conf_path: Path = NETWORKS_CONF, platform: str = "linux") -> None:
    """Raise one LabError with the exact networks.conf line when VirtualBox would refuse a lab network
    (only where the rule applies: see compat.host_only_ranges_apply)."""
    if not host_only_ranges_apply(version, platform):
        return
    allowed = allowed_host_only_ranges(conf_text)
    refused = [
        net for net in topology.networks.values()
        if not any(r.version == 4 and net.cidr.subnet_of(r) for r in allowed)  # type: ignore[arg-type]
    ]
    if not refused:
        return
    if conf_text is None:
        where = f"without {conf_path} it allows only 192.168.56.0/21, not"
    else:
        where = f"{conf_path} does not allow"
    names = ", ".join(f"{net.name} {net.cidr}" for net in refused)
    release = ".".join(str(part) for part in version)
    raise LabError(
        f"VirtualBox {release} refuses host-only networks outside its allowed ranges and {where} {names}; "
        f"add this line to {conf_path} (as root): {networks_conf_line(topology)}"
    )


def read_networks_conf(path: Path = NETWORKS_CONF) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise LabError(f"cannot read {path} ({err.strerror}); make it readable for your user") from None


# --- host-only interfaces ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HostOnlyInterface:
    name: str
    ip: str
    netmask: str

    def network(self) -> ipaddress.IPv4Network | None:
        try:
            return ipaddress.ip_network(f"{self.ip}/{self.netmask}", strict=False)  # type: ignore[return-value]
        except ValueError:
            return None


def parse_host_only_interfaces(text: str) -> list[HostOnlyInterface]:
    """``VBoxManage list hostonlyifs``: blank-line separated ``Key: value`` blocks."""
    interfaces = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields = dict(
            (key.strip(), value.strip())
            for key, sep, value in (line.partition(":") for line in block.splitlines())
            if sep
        )
        if "Name" in fields:
            interfaces.append(HostOnlyInterface(fields["Name"], fields.get("IPAddress", ""),
                                                fields.get("NetworkMask", "")))
    return interfaces


def parse_created_interface(text: str) -> str:
    """The name in ``Interface 'vboxnet1' was successfully created``."""
    match = re.search(r"Interface '([^']+)' was successfully created", text)
    if not match:
        raise VBoxManageError(f"`VBoxManage hostonlyif create` printed no interface name: {text.strip()!r}")
    return match.group(1)


def ensure_host_only_networks(run: Runner, networks: list[Network]) -> dict[str, str]:
    """Network name -> host-only interface, creating and addressing the missing ones."""
    existing = parse_host_only_interfaces(run(["list", "hostonlyifs"]))
    chosen = {}
    for network in networks:
        match = next((i for i in existing if i.network() == network.cidr), None)
        if match is None:
            name = parse_created_interface(run(["hostonlyif", "create"]))
            for command in host_only_create_commands(network, name):
                run(command)
            match = HostOnlyInterface(name, *host_side_address(network))
            existing.append(match)
        chosen[network.name] = match.name
    return chosen


# --- media and VM storage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MediumUser:
    vm: str
    uuid: str


def parse_medium_users(text: str) -> list[MediumUser]:
    """VMs in ``showmediuminfo``'s ``In use by VMs:`` field (first line and its indented continuations)."""
    users: list[MediumUser] = []
    in_field = False
    for line in text.splitlines():
        if line.startswith("In use by VMs:"):
            in_field = True
            line = line.partition(":")[2]
        elif in_field and not (line[:1].isspace() and "(UUID:" in line):
            break
        if in_field:
            users += [MediumUser(vm.strip(), uuid) for vm, uuid in
                      re.findall(r"([^,()\[\]]+?) \(UUID: ([0-9a-fA-F-]+)\)", line)]
    return users


def parse_machine_readable(text: str) -> dict[str, str]:
    """``showvminfo --machinereadable``: ``key="value"`` lines, quotes removed."""
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip().strip('"')] = value.strip().strip('"')
    return info


def parse_extradata(text: str) -> dict[str, str]:
    """``getextradata <vm> enumerate``: one ``Key: <key>, Value: <value>`` line per item (VBoxManageMisc.cpp)."""
    items = {}
    for line in text.splitlines():
        match = re.match(r"Key: (.*?), Value: (.*)$", line)
        if match:
            items[match.group(1)] = match.group(2)
    return items
