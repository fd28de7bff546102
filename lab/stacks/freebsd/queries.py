"""What the drill asks of a FreeBSD host: the commands and parsers ``Stack``'s facts pair up, the commands it
runs on the client (md5, remount, probe), and what an operator reads (gmultipath, sessions). The output
formats are FreeBSD 10.3's, read by ``lab.parsers``.

Knows no plan, step or fault.
"""

from __future__ import annotations

from lab.parsers import parse_gmultipath_status
from lab.parsers.iscsi import parse_iscsictl_list
from lab.stacks.shell import quote, words
from lab.topology import Topology


class FreeBSDQueries:
    """The drill's questions to a host, mixed into FreeBSDStack."""

    # What the drill runs on the client.

    def md5_command(self, path: str) -> str:
        """md5(1) as the paper used it; ``-q`` prints the digest alone."""
        return f"md5 -q {quote(path)}"

    def remount_commands(self, topo: Topology) -> list[str]:
        mountpoint = topo.client.mountpoint
        device = f"/dev/stripe/{topo.client.stripe}"
        return [f"! mount | grep -q {quote(f'^{device} on {mountpoint} (')} || umount {quote(mountpoint)}",
                f"mount {words(device, mountpoint)}"]

    def probe_write_read_command(self, path: str) -> str:
        """FreeBSD 10.3's dd(1) has no sync flags, so the write is followed by fsync(1); its date(1) has no
        sub-second format (``clock_read_command``), so the probe's samples have one-second resolution."""
        return (f"dd if=/dev/random {quote(f'of={path}')} bs=4096 count=1 conv=notrunc 2>/dev/null && "
                f"fsync {quote(path)} && dd {quote(f'if={path}')} of=/dev/null bs=4096 2>/dev/null")

    # The commands and parsers behind Stack.client_paths_fact and Stack.client_portals_fact.

    def client_paths_command(self, topo: Topology) -> str:
        return "gmultipath status " + words(*(m.name for m in topo.client.multipaths))

    def parse_client_paths(self, topo: Topology, text: str) -> dict[str, dict[str, str]]:
        """gmultipath's ACTIVE/READ components serve I/O, PASSIVE ones stand by, FAIL ones are gone."""
        states = {"ACTIVE": "active", "READ": "active", "PASSIVE": "standby", "FAIL": "failed"}
        return {device.name.removeprefix("multipath/"):
                {c.name: states.get(c.state, "failed") for c in device.components}
                for device in parse_gmultipath_status(text)}

    def client_sessions_command(self) -> str:
        return "iscsictl -L"

    def parse_client_path_portals(self, text: str) -> dict[str, str]:
        return {device: session.portal.split(":")[0]
                for session in parse_iscsictl_list(text) for device in session.devices}

    # What an operator reads on a host.

    def multipath_status_command(self, name: str | None = None) -> str:
        return f"gmultipath status {quote(name)}" if name else "gmultipath status"

    def sessions_command(self) -> str:
        return "iscsictl -L"
