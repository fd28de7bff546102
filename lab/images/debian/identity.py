"""The kernel command line contract between the Debian image and the providers that boot it.

The image has no boot loader: providers boot its kernel and initrd directly, with the per-VM identity
(host name, hostid, addresses, SSH key) as ``beast.*`` parameters that beast-identity.service applies at
boot. Holds only the validation and the format; must not know how the image is built or cached.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Sequence

from lab.errors import LabError

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTID = re.compile(r"^(0x)?[0-9a-fA-F]{8}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def identity_cmdline(hostname: str, hostid: str, interfaces: Sequence[tuple[str, str]], ssh_pubkey: str) -> str:
    """The ``beast.*`` parameters beast-identity.service applies at boot (see beast-identity.sh).

    ``interfaces`` is ``[(mac, "addr/prefix"), ...]``; ``ssh_pubkey`` is one OpenSSH public key line.
    """
    if not _HOSTNAME.match(hostname):
        raise LabError(f"hostname {hostname!r} is not a valid host name: use lower-case letters, digits and '-'")
    if not _HOSTID.match(hostid) or int(hostid, 16) == 0:
        raise LabError(f"hostid {hostid!r} is not 8 hex digits (non-zero): use e.g. '0a1b2c3d'")
    parts = [f"beast.hostname={hostname}", f"beast.hostid={hostid.lower().removeprefix('0x')}"]
    for mac, address in interfaces:
        if not _MAC.match(mac):
            raise LabError(f"MAC {mac!r} of {hostname} is not six ':'-separated hex bytes: use e.g. 52:54:00:be:00:01")
        try:
            interface = ipaddress.ip_interface(address)
        except ValueError:
            raise LabError(f"address {address!r} of {hostname} is not ADDR/PREFIX: use e.g. 192.168.56.10/24") from None
        if "/" not in address:
            raise LabError(f"address {address!r} of {hostname} has no prefix length: use e.g. {address}/24")
        parts.append(f"beast.if={mac.lower()},{interface.with_prefixlen}")
    key = ssh_pubkey.strip()
    if not key or "\n" in key or len(key.split()) < 2:
        raise LabError(f"the SSH public key for {hostname} is not one OpenSSH public key line (type base64 [comment])")
    parts.append(f"beast.sshkey={base64.b64encode(key.encode()).decode()}")
    return " ".join(parts)


def kernel_cmdline(
    hostname: str,
    hostid: str,
    interfaces: Sequence[tuple[str, str]],
    ssh_pubkey: str,
    root_device: str = "/dev/vda",
) -> str:
    """The whole ``-append`` string for booting the Debian image with a per-VM identity."""
    identity = identity_cmdline(hostname, hostid, interfaces, ssh_pubkey)
    return f"root={root_device} rw console=ttyS0 {identity}"
