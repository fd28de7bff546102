"""What the drill asks of a Linux host, as facts (a command paired with its parser), and the plain
commands it runs on the client (remount, probe).

Knows the tools' output formats through ``lab.parsers``; knows no plan, step or fault.
"""

from __future__ import annotations

from functools import partial

from lab.parsers.iscsi import parse_iscsiadm_session_p3
from lab.parsers.multipath import parse_dmsetup_status
from lab.stacks.facts import Fact
from lab.stacks.linux.parts import stripe_device
from lab.stacks.shell import quote, words
from lab.topology import Topology


def multipath_status_command(name: str | None = None) -> str:
    """``dmsetup status`` of one map, or of every multipath map ("NAME: ..." lines)."""
    return f"dmsetup status {quote(name)}" if name else "dmsetup status --target multipath"


def multipath_table_command(name: str | None = None) -> str:
    return f"dmsetup table {quote(name)}" if name else "dmsetup table --target multipath"


def sessions_command() -> str:
    return "iscsiadm -m session"


def md5_command(path: str) -> str:
    return f"md5sum {quote(path)} | cut -d' ' -f1"


def client_paths_command(topo: Topology) -> str:
    """Each client map's status, then the kernel names of the devices it lists (maj:min name)."""
    names = words(*(m.name for m in topo.client.multipaths))
    return (f"for map in {names}; do printf '%s: ' \"$map\"; dmsetup status \"$map\"; done; "
            "echo '--'; lsblk -rndo MAJ:MIN,NAME")


def parse_client_paths(topo: Topology, text: str) -> dict[str, dict[str, str]]:
    """Paths by kernel name (sdb): "active" in the group in use, "standby" in the other, or "failed"."""
    status_text, _, devices_text = text.partition("\n--\n")
    names = dict(line.split(maxsplit=1) for line in devices_text.splitlines() if len(line.split()) == 2)
    paths: dict[str, dict[str, str]] = {}
    for status in parse_dmsetup_status(status_text):
        states = {}
        for number, group in enumerate(status.groups, 1):
            for path in group.paths:
                if not path.active:
                    state = "failed"
                else:
                    state = "active" if number == status.next_group else "standby"
                states[names.get(path.dev, path.dev)] = state
        paths[status.name or ""] = states
    return paths


def client_sessions_command() -> str:
    return "iscsiadm -m session -P 3"


def parse_client_path_portals(text: str) -> dict[str, str]:
    return {disk.device: (session.current_portal or session.persistent_portal or "").split(":")[0]
            for session in parse_iscsiadm_session_p3(text) for disk in session.disks}


def remount_commands(topo: Topology) -> list[str]:
    mountpoint = quote(topo.client.mountpoint)
    return [f"! mountpoint -q {mountpoint} || umount {mountpoint}",
            f"mount {quote(stripe_device(topo))} {mountpoint}"]


def probe_command(topo: Topology, log_path: str, interval_s: float) -> str:
    probe = f"{topo.client.mountpoint}/.beast-probe"
    write_read = (f"dd if=/dev/urandom {quote(f'of={probe}')} bs=4096 count=1 oflag=direct,sync 2>/dev/null && "
                  f"dd {quote(f'if={probe}')} of=/dev/null bs=4096 iflag=direct 2>/dev/null")
    return (f"while :; do s=$(date +%s.%N); if {write_read}; then r=ok; else r=fail; fi; "
            f'echo "$s $(date +%s.%N) $r" >> {quote(log_path)}; sleep {quote(f"{interval_s:g}")}; done')


def client_paths_fact(topo: Topology) -> Fact[dict[str, dict[str, str]]]:
    return Fact("client-paths", client_paths_command(topo), partial(parse_client_paths, topo), "paths")


def client_portals_fact() -> Fact[dict[str, str]]:
    return Fact("client-portals", client_sessions_command(), parse_client_path_portals, "paths")
