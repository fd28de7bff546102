"""Faults the drill injects on Linux hosts to prove its checker can fail, and where the naive failover of the
split-brain scenario (``Stack.force_import_command``) finds the pool. Knows no plan and no parser.
"""

from __future__ import annotations

from lab.stacks.linux.parts import disk_path
from lab.stacks.linux.pools import import_devices
from lab.stacks.shell import quote
from lab.topology import Topology


class LinuxFaults:
    """The drill's faults, mixed into LinuxStack."""

    def corrupt_disk_command(self, topo: Topology, disk: str) -> str:
        """Random data over the part of the disk ZFS allocates first (after its 4 MiB of labels and boot area)."""
        return (f"dd if=/dev/urandom {quote(f'of={disk_path(topo, disk)}')} bs=1M seek=4 count=96 "
                f"oflag=direct conv=notrunc status=none")

    def fail_client_path_command(self, topo: Topology, multipath: str) -> str:
        """The SCSI disk behind the map's last path set offline: multipathd's checker then fails the path
        and keeps it failed (a ``dmsetup message fail_path`` alone would be reinstated within seconds)."""
        last = f"$(dmsetup table {quote(multipath)} | tr ' ' '\\n' | grep -E '^[0-9]+:[0-9]+$' | tail -n 1)"
        return (f"dev={last} && echo offline > /sys/dev/block/$dev/device/state && "
                f"dmsetup message {quote(multipath)} 0 fail_path $dev")

    def pool_search_options(self, topo: Topology, pool: str) -> list[str]:
        """The split-brain scenario's forced import names the pool's partitions, as takeover does."""
        return [import_devices(topo, topo.pools[pool])]
