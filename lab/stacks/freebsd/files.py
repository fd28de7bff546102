"""The configuration files the paper writes by hand on each host: rc.conf, sysctl.conf, ctl.conf, and the
shared /etc/hostid the paper's cloned VMs had without writing it."""

from __future__ import annotations

import re
import uuid

from lab.stacks.freebsd.devices import nic
from lab.topology import Host, Pool, Role, Topology

RC_CONF = "/etc/rc.conf.local"
"""The paper's rc.conf lines go to rc.conf.local, which rc(8) reads after /etc/rc.conf: the image's own
rc.conf keeps the management NIC (``ifconfig_vtnet0="DHCP"``) that the lab reaches the guest through, and
the executor can still compare the whole file with the paper's."""

SYSCTL_CONF = "/etc/sysctl.conf"
HOSTID_FILE = "/etc/hostid"
"""rc.d/hostid sets kern.hostuuid from this file at boot, and kern.hostid from the first four bytes of its
md5; only without it does each VM take its own SMBIOS UUID."""
CTL_CONF = "/etc/ctl.conf"
SYSCTLS = {"kern.iscsi.fail_on_disconnection": "1"}
"""Drop an iSCSI disk at once when its target goes away, so gmultipath fails over (the paper's reason)."""

NIC_COMMENTS = {"private": "Inter-controller LAN", "public": "Public network"}
"""The paper's comments on its two networks; other networks are commented with their description."""

PRIVATE_PORTAL_GROUP = "pg0"
PUBLIC_PORTAL_GROUP = "pg1"


def rc_conf(topo: Topology, host: Host) -> str:
    """The paper's rc.conf for one host: em0/em1 moved to em1/em2, the second controller's missing quote
    fixed, its comments worded as on the first."""
    lines = [f'hostname="{host.name}"', ""]
    for index, (network, address) in enumerate(host.addresses.items()):
        netmask = topo.networks[network].cidr.netmask
        comment = NIC_COMMENTS.get(network, topo.networks[network].description)
        lines.append(f'ifconfig_{nic(index)}="inet {address} netmask {netmask}" # {comment}')
    lines += [
        "",
        'sshd_enable="YES"',
        '# Set dumpdev to "AUTO" to enable crash dumps, "NO" to disable',
        'dumpdev="AUTO"',
        "",
        "# VirtualBox guest additions",
        'vboxguest_enable="YES"',
        'vboxservice_enable="YES"',
        "",
        "# iSCSI",
    ]
    if host.role is Role.CONTROLLER:
        lines.append('ctld_enable="YES" # Targets')
    lines.append('iscsid_enable="YES" # Initiators')
    return "\n".join(lines) + "\n"


def sysctl_conf() -> str:
    return "".join(f"{name}={value}\n" for name, value in SYSCTLS.items())


def sysctl_conf_merge(name: str, value: str) -> str:
    """Shell that puts ``name=value`` in sysctl.conf in place of any earlier setting of ``name``, keeping the
    box's own lines (debug.debugger_on_panic=0, kern.panic_reboot_wait_time=0: a panic reboots at once)."""
    new = f"{SYSCTL_CONF}.beast-new"
    return (f"touch {SYSCTL_CONF} && sed '/^{re.escape(name)}=/d' {SYSCTL_CONF} > {new} && "
            f"echo '{name}={value}' >> {new} && mv -f {new} {SYSCTL_CONF}")


def shared_hostuuid(topo: Topology) -> str:
    """One host UUID for both controllers of a lab, as the paper's cloned VMs had."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"beast-lab:{topo.lab.name}"))


def portal_group(name: str, address: str) -> str:
    return f"portal-group {name} {{\n\tdiscovery-auth-group no-authentication\n\tlisten {address}\n}}\n"


def target(iqn: str, group: str, luns: list[str]) -> str:
    blocks = "\n".join(f"\tlun {number} {{\n\t\tpath {path}\n\t}}\n" for number, path in enumerate(luns))
    return f"target {iqn} {{\n\tauth-group no-authentication\n\tportal-group {group}\n\n{blocks}}}\n"


def zvol_device(pool: Pool) -> str:
    return f"/dev/zvol/{pool.zvol_path}"


def private_ctl_conf(topo: Topology, host: Host) -> str:
    """The arbitrator's half: the own zvol offered to the peer on the private LAN."""
    own = zvol_device(topo.pool_of(host.name))
    return "\n".join([
        portal_group(PRIVATE_PORTAL_GROUP, host.address("private")),
        target(topo.iscsi.private_target, PRIVATE_PORTAL_GROUP, [own]),
    ])


def full_ctl_conf(topo: Topology, host: Host) -> str:
    """Private and public targets: the client sees the own zvol (lun 0) and the peer's pool through the
    arbitrator multipath (lun 1)."""
    own = zvol_device(topo.pool_of(host.name))
    back = f"/dev/multipath/{topo.pool_of(topo.peer(host.name).name).arbitrator}"
    return "\n".join([
        portal_group(PRIVATE_PORTAL_GROUP, host.address("private")),
        portal_group(PUBLIC_PORTAL_GROUP, host.address("public")),
        target(topo.iscsi.private_target, PRIVATE_PORTAL_GROUP, [own]),
        target(topo.iscsi.public_target, PUBLIC_PORTAL_GROUP, [own, back]),
    ])
