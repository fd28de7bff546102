"""The client's multipath maps, owned by multipathd: /etc/multipath.conf from the topology and the steps that
start multipathd and wait for each map in the paper's active/passive order.

The paper's client used FreeBSD's gmultipath; here multipath-tools 0.9.4 (bookworm) with a path checker, so
a path failed during a transient fault comes back by itself once the fault ends. The controllers keep their
dmsetup-made arbitrator maps: multipathd stays disabled there (it cannot group an iSCSI disk with a zvol).

How the order sticks (multipath-tools 0.9.4's source): LIO answers ALUA, and its built-in device entry
(vendor "(LIO-ORG|SUSE)" in hwtable.c: hwhandler "1 alua", group_by_prio, prio alua) together with the
default detect_prio yes (select_prio in propsel.c tries autodetection before any configured prio) would rank
both paths active/optimized and put them in ONE group. So ``detect_prio no`` in ``overrides`` (detect_prio
is read from overrides, the device entry, then defaults: never from ``multipaths``), and in each volume's
``multipaths`` entry (which wins over the device entry for prio and grouping) prio ``iet`` with
``preferredip=<owner's public address>``: iet gives 20 to a path whose /dev/disk/by-path name holds that
address and 10 to the others, and group_by_prio makes group 1 the owner's path, group 2 the peer's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lab.errors import LabError
from lab.plan import Step
from lab.stacks.checks import wait_until
from lab.stacks.linux.parts import HELPER_DIR, ISCSI_FAST_FAIL, SCRIPTS, lun_path, volume_wwn
from lab.stacks.shell import quote, words
from lab.topology import Topology

MULTIPATH_CONF_PATH = "/etc/multipath.conf"
MAP_OK_HELPER = "beast-multipathd-ok"
MULTIPATHD_UNITS = ("multipathd.socket", "multipathd.service")
LIO_COMPANY_ID = "001405"
"""LIO's default IEEE company id (t10_wwn.company_id), the OUI in its NAA designators."""

POLLING_INTERVAL_S = 2
"""The path checker's period: a failed path is tested every 2 s, so it is back 2-4 s after its cable."""
MAX_POLLING_INTERVAL_S = 4
"""A healthy path's checks back off to at most 4 s (default 4 x polling_interval = 8 s): an idle path cut
from its controller is seen failed within ~4 s even when no I/O goes through it."""
NO_PATH_RETRY = 30
"""Checker periods a map queues I/O once it has no usable path: 30 x 2 s = 60 s. The worst failover
measured is ~40 s in takeover mode (kill to takeover done: iSCSI detection, forced import with its
activity check, map reload); 60 s covers it with 20 s to spare. After that the map fails I/O, as
gmultipath does, rather than hanging the client's stripe forever (the LIO device entry's default is 12
periods, 24 s: shorter than a takeover)."""
FAST_IO_FAIL_TMO_S = ISCSI_FAST_FAIL["node.session.timeo.replacement_timeout"]
"""multipathd writes fast_io_fail_tmo (default 5) into each iSCSI session's recovery_tmo; it is the
lab's replacement_timeout, so the login's setting and multipathd's agree."""

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_WWID = re.compile(r"3[0-9a-f]{32}")


@dataclass(frozen=True)
class ClientMap:
    """One client map: the volume's WWID, the owner's public lun 0 (group 1) and the peer's lun 1 (group 2)."""

    alias: str
    wwid: str
    owner_address: str
    active: str
    passive: str


def lio_wwid(unit_serial: str) -> str:
    """The udev/multipath WWID of a LIO LUN whose unit serial is ``unit_serial``.

    LIO's VPD page 0x83 NAA designator (spc_gen_naa_6h_vendor_specific, drivers/target/target_core_spc.c):
    NAA 6, the 24-bit company id, then the serial's hex digits (anything else skipped) until the 16 bytes
    are full, i.e. the first 25. udev's scsi_id puts "3" (designator type NAA) before the 32 hex digits."""
    digits = "".join(c for c in unit_serial.lower() if c in "0123456789abcdef")
    if len(digits) < 25:
        raise LabError(f"LIO unit serial {unit_serial!r} has {len(digits)} hex digits; a WWID needs 25")
    return f"36{LIO_COMPANY_ID}{digits[:25]}"


def client_maps(topo: Topology) -> list[ClientMap]:
    """The topology's client multipaths, each checked for what multipath.conf and iet can express."""
    iqn = topo.iscsi.public_target
    maps = []
    for multipath in topo.client.multipaths:
        pool = topo.pools[multipath.pool]
        owner = topo.hosts[pool.owner]
        peer = topo.peer(owner.name)
        owner_address, peer_address = owner.address("public"), peer.address("public")
        if not _ALIAS.fullmatch(multipath.name):
            raise LabError(f"client multipath name {multipath.name!r} cannot be a multipathd alias: "
                           "use letters, digits and _ . + -")
        _check_preferred_ip(multipath.name, owner_address, peer_address)
        maps.append(ClientMap(multipath.name, lio_wwid(volume_wwn(pool)), owner_address,
                              lun_path(owner_address, iqn, 0), lun_path(peer_address, iqn, 1)))
    return maps


def _check_preferred_ip(alias: str, owner: str, peer: str) -> None:
    """iet finds a path's address with an IPv4 regex in its by-path name, ignores a preferredip of 7
    characters or fewer, and compares only as many characters as the path's address has."""
    for address in (owner, peer):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise LabError(f"client multipath {alias}: public address {address!r} is not IPv4, "
                           "which multipathd's iet prioritizer needs") from None
    if len(owner) <= 7:
        raise LabError(f"client multipath {alias}: iet ignores a preferred address as short as {owner!r}")
    if owner.startswith(peer):
        raise LabError(f"client multipath {alias}: iet would prefer the peer's path too, since {peer!r} "
                       f"is a prefix of the owner's {owner!r}; give the controllers other public addresses")


def _value(text: str) -> str:
    if not text or any(c in text for c in '"\n\\') or text != text.strip():
        raise LabError(f"multipath.conf value {text!r} is empty or holds a quote, newline or backslash")
    return f'"{text}"'


def multipath_conf(topo: Topology) -> str:
    """/etc/multipath.conf for the client: the lab's volumes only, each owner-first (see module docstring)."""
    maps = client_maps(topo)
    for m in maps:
        if not _WWID.fullmatch(m.wwid):
            raise LabError(f"client multipath {m.alias}: {m.wwid!r} is not a NAA WWID")
    lines = [
        "# BeaST Lab: the client's maps (lab/stacks/linux/client_multipath.py). Written by the plan.",
        "defaults {",
        f"\tpolling_interval {POLLING_INTERVAL_S}",
        f"\tmax_polling_interval {MAX_POLLING_INTERVAL_S}",
        f"\tfind_multipaths {_value('greedy')}",
        f"\tuser_friendly_names {_value('no')}",
        f"\tfast_io_fail_tmo {FAST_IO_FAIL_TMO_S}",
        "}",
        "overrides {",
        f"\tpath_checker {_value('tur')}",
        f"\tdetect_checker {_value('no')}",
        f"\tdetect_prio {_value('no')}",
        "}",
        "blacklist {",
        f"\twwid {_value('.*')}",
        "}",
        "blacklist_exceptions {",
        *(f"\twwid {_value(f'^{m.wwid}$')}" for m in maps),
        "}",
        "multipaths {",
    ]
    for m in maps:
        lines += [
            "\tmultipath {",
            f"\t\twwid {_value(m.wwid)}",
            f"\t\talias {_value(m.alias)}",
            f"\t\tpath_grouping_policy {_value('group_by_prio')}",
            f"\t\tprio {_value('iet')}",
            f"\t\tprio_args {_value(f'preferredip={m.owner_address}')}",
            f"\t\tfailback {_value('immediate')}",
            f"\t\tno_path_retry {NO_PATH_RETRY}",
            "\t}",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def multipathd_step(topo: Topology, stage: int) -> Step:
    """multipath.conf and the map check, then multipathd enabled and told to read the file again."""
    helper = f"{HELPER_DIR}/{MAP_OK_HELPER}"
    running = " && ".join(f"systemctl {verb} --quiet multipathd.service" for verb in ("is-enabled", "is-active"))
    return Step(
        "multipathd",
        files={MULTIPATH_CONF_PATH: multipath_conf(topo), helper: (SCRIPTS / MAP_OK_HELPER).read_text()},
        commands=(f"chmod 755 {helper}",
                  f"systemctl enable --now {words(*MULTIPATHD_UNITS)}",
                  "multipathd reconfigure"),
        check=running, verify=running, stage=stage)


SCSI_TIMEOUT_RULE_PATH = "/etc/udev/rules.d/62-beast-scsi-timeout.rules"
SCSI_TIMEOUT_S = 120
"""How long the client's SCSI layer lets a command to a LIO disk run before aborting it (the kernel's
default is 30 s). A takeover holds the client's commands in the survivor's arbitrator map for its whole
length (37-45 s measured in cluster mode): with 30 s they were aborted, the survivor's path failed for
16 s and the map had no path at all. A dead controller is still noticed in seconds: its session's
noop-outs and replacement_timeout fail its commands, whatever this timeout. Storage vendors ship udev
rules like this one for the same reason."""
SCSI_TIMEOUT_RULE = (
    "# BeaST Lab: a LIO disk's commands may wait out a controller takeover (lab/stacks/linux/client_multipath.py)\n"
    'ACTION!="remove", SUBSYSTEM=="scsi", ENV{DEVTYPE}=="scsi_device", ATTR{vendor}=="LIO-ORG*", '
    f'ATTR{{timeout}}="{SCSI_TIMEOUT_S}"\n'
)


def scsi_timeout_step(stage: int) -> Step:
    """The rule before the logins, so every LIO disk the client logs in to gets it; disks already there are
    told too."""
    timeouts = "/sys/class/scsi_device/*/device"
    done = (f"[ -e {SCSI_TIMEOUT_RULE_PATH} ] && for d in {timeouts}; do [ -e \"$d/vendor\" ] || continue; "
            f"case $(cat \"$d/vendor\") in LIO-ORG*) [ \"$(cat \"$d/timeout\")\" = {SCSI_TIMEOUT_S} ] || exit 1;; "
            "esac; done")
    return Step("scsi command timeout", files={SCSI_TIMEOUT_RULE_PATH: SCSI_TIMEOUT_RULE},
                commands=("udevadm control --reload", "udevadm trigger --subsystem-match=scsi --action=change",
                          "udevadm settle"),
                check=f"( {done} )", verify=f"( {done} )", stage=stage)


def map_step(client_map: ClientMap, stage: int) -> Step:
    """One alias map with both paths usable, the owner's in group 1. A map of that name that multipathd
    does not own (a dmsetup-made one from an older plan) is refused: the stripe may have it open."""
    m = client_map
    done = f"{MAP_OK_HELPER} {words(m.alias, m.wwid, m.active, m.passive)}"
    alias = quote(m.alias)
    foreign = quote(f"{m.alias} is a device-mapper map multipathd does not own: re-provision the client")
    return Step(
        f"multipath {m.alias}",
        commands=(f"! dmsetup info {alias} >/dev/null 2>&1 || "
                  f'[ "$(dmsetup info -c --noheadings -o uuid {alias})" = {quote(f"mpath-{m.wwid}")} ] || '
                  f"{{ echo {foreign} >&2; exit 1; }}",
                  f"beast-wait-block {quote(m.active)}",
                  f"beast-wait-block {quote(m.passive)}",
                  "multipathd reconfigure"),
        check=done, verify=wait_until(done, 60), stage=stage)


def client_multipath_steps(topo: Topology, stage: int) -> tuple[list[Step], list[Step]]:
    """The steps before the logins (multipathd, so it claims the paths as they appear, and the SCSI command
    timeout) and the map steps."""
    return [multipathd_step(topo, stage), scsi_timeout_step(stage)], [map_step(m, stage) for m in client_maps(topo)]
