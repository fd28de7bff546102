"""What the drill asks of a Linux host: the commands and parsers ``Stack``'s facts pair up, the commands it
runs on the client (md5, remount, probe), and what an operator reads (maps, sessions).

Knows the tools' output formats through ``lab.parsers``; knows no plan, step or fault.
"""

from __future__ import annotations

from lab.parsers.iscsi import parse_iscsiadm_session_p3
from lab.parsers.multipath import parse_dmsetup_status
from lab.stacks.linux.parts import stripe_device
from lab.stacks.shell import quote, words
from lab.topology import Topology

UMOUNT_WAIT_S = 120


class LinuxQueries:
    """The drill's questions to a host, mixed into LinuxStack."""

    # What the drill runs on the client.

    def md5_command(self, path: str) -> str:
        return f"md5sum {quote(path)} | cut -d' ' -f1"

    def remount_commands(self, topo: Topology) -> list[str]:
        """The unmount is retried while the filesystem is busy: I/O the probe or the copy left queued in a
        map during a takeover must drain first (measured: "target is busy" right after a cluster takeover)."""
        mountpoint = quote(topo.client.mountpoint)
        retried = (f"i=0; until umount {mountpoint}; do [ $i -ge {UMOUNT_WAIT_S} ] && exit 1; i=$((i + 1)); "
                   "sleep 1; done")
        return [f"! mountpoint -q {mountpoint} || {{ {retried}; }}",
                f"mount {quote(stripe_device(topo))} {mountpoint}"]

    def probe_write_read_command(self, path: str) -> str:
        return (f"dd if=/dev/urandom {quote(f'of={path}')} bs=4096 count=1 oflag=direct,sync 2>/dev/null && "
                f"dd {quote(f'if={path}')} of=/dev/null bs=4096 iflag=direct 2>/dev/null")

    # The commands and parsers behind Stack.client_paths_fact and Stack.client_portals_fact.

    def client_paths_command(self, topo: Topology) -> str:
        """Each client map's status as "NAME: ..." (none for a map that does not exist: multipathd may have
        flushed it), then the kernel names of the devices they list (maj:min name)."""
        names = words(*(m.name for m in topo.client.multipaths))
        return (f"for map in {names}; do if status=$(dmsetup status \"$map\" 2>/dev/null); then "
                "printf '%s: %s\\n' \"$map\" \"$status\"; fi; done; echo '--'; lsblk -rndo MAJ:MIN,NAME")

    def parse_client_paths(self, topo: Topology, text: str) -> dict[str, dict[str, str]]:
        """Paths by kernel name (sdb): "active" in the group in use, "standby" in the other, or "failed".
        multipathd's maps read the same as dmsetup-made ones (its queue_if_no_path and alua handler are
        table words; the status has the same groups); a missing map is absent from the answer."""
        status_text, _, devices_text = f"\n{text}".partition("\n--\n")
        names = dict(line.split(maxsplit=1) for line in devices_text.splitlines() if len(line.split()) == 2)
        paths: dict[str, dict[str, str]] = {}
        for status in parse_dmsetup_status(status_text) if status_text.strip() else []:
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

    def client_sessions_command(self) -> str:
        return "iscsiadm -m session -P 3"

    def parse_client_path_portals(self, text: str) -> dict[str, str]:
        return {disk.device: (session.current_portal or session.persistent_portal or "").split(":")[0]
                for session in parse_iscsiadm_session_p3(text) for disk in session.disks}

    # What an operator reads on a host.

    def multipath_status_command(self, name: str | None = None) -> str:
        """``dmsetup status`` of one map, or of every multipath map ("NAME: ..." lines)."""
        return f"dmsetup status {quote(name)}" if name else "dmsetup status --target multipath"

    def multipath_table_command(self, name: str | None = None) -> str:
        return f"dmsetup table {quote(name)}" if name else "dmsetup table --target multipath"

    def sessions_command(self) -> str:
        return "iscsiadm -m session"
