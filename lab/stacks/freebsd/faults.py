"""Faults the drill injects on FreeBSD hosts to prove its checker can fail (the naive failover of the
split-brain scenario is ZFS's own: ``Stack.force_import_command``). Each is one shell command; knows no plan
and no parser.
"""

from __future__ import annotations

from lab.stacks.freebsd.devices import disk_device
from lab.stacks.shell import quote
from lab.topology import Topology


class FreeBSDFaults:
    """The drill's faults, mixed into FreeBSDStack."""

    def corrupt_disk_command(self, topo: Topology, disk: str) -> str:
        """GEOM refuses writes to a disk ZFS holds open unless kern.geom.debugflags has 0x10 ("allow foot
        shooting"); the flag is set for the dd alone and the old value put back."""
        dd = f"dd if=/dev/random of=/dev/{disk_device(topo, disk)} bs=1m oseek=4 count=96 conv=notrunc"
        return (f"old=$(sysctl -n kern.geom.debugflags); sysctl kern.geom.debugflags=0x10 >/dev/null && {dd}; "
                f"rc=$?; sysctl kern.geom.debugflags=$old >/dev/null; [ $rc -eq 0 ]")

    def fail_client_path_command(self, topo: Topology, multipath: str) -> str:
        last = f"$(gmultipath list {quote(multipath)} | awk '/^[0-9]+\\. Name:/ {{name = $3}} END {{print name}}')"
        return f"gmultipath fail {quote(multipath)} {last}"
