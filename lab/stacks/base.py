"""What every stack offers: plans from a topology, and the stack-specific ways to look at a host."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum
from functools import partial

from lab.errors import LabError
from lab.parsers.digest import parse_md5
from lab.parsers.zpool import PoolStatus, parse_zpool_status
from lab.plan import Plan
from lab.stacks.facts import Fact
from lab.stacks.hardware import LINUX_HARDWARE, GuestHardware
from lab.stacks.shell import quote
from lab.topology import Host, Topology
from lab.wire import as_is


class Stage(IntEnum):
    """The paper's "now on both controllers" barriers while building the BeaST."""

    BASE = 0
    POOLS = 1
    CROSS_IMPORT = 2
    PRIVATE_TARGET = 3
    ARBITRATOR = 4
    PUBLIC_TARGET = 5
    CLIENT = 6


class RecoveryStage(IntEnum):
    """The paper's recovery procedure: one host after the other, as the prose orders it."""

    EXPORT = 0
    REBOOT = 1
    IMPORT = 2
    SCRUB_ON_FAILED = 3
    SCRUB_ON_SURVIVOR = 4
    CLEAR = 5
    PRIVATE_TARGET = 6
    ARBITRATOR = 7
    PUBLIC_TARGET = 8
    CLIENT = 9


class TakebackStage(IntEnum):
    """Recovery in arbitrator = "takeover" mode: the restarted controller gets its pool back. The survivor
    lets go of the pool before its owner imports it, so no stage has the pool imported on two hosts."""

    RELEASE = 0
    """Survivor: its arbitrator map back to the iSCSI path alone, then the failed controller's pool exported."""
    IMPORT = 1
    """Restarted controller: base steps again, its own pool imported (never with -f)."""
    PRIVATE_TARGET = 2
    ARBITRATOR = 3
    PUBLIC_TARGET = 4
    CLIENT = 5
    SCRUB = 6
    CLEAR = 7


class Stack(ABC):
    """A guest software stack (FreeBSD as in the paper, or its Linux analogue).

    Plans are pure functions of the topology, so they can be tested offline against the paper.
    """

    name: str
    arbitrator_modes: tuple[str, ...] = ("paper",)
    """The ``[lab] arbitrator`` modes this stack can build."""
    hardware: GuestHardware = LINUX_HARDWARE
    """The virtual devices this stack's guests expect (the provider builds them)."""
    client_workload: str = "fio"
    """What the client runs beside the paper's copy: "fio" (per-I/O latency log and fio's own verify) or
    "probe" (a write/read loop, ``probe_command``) where the client's system offers no fio."""

    @abstractmethod
    def provision(self, topo: Topology) -> Plan:
        """Build the whole BeaST: pools, arbitrator, public targets, client multipaths, stripe, mount."""

    @abstractmethod
    def recovery(self, topo: Topology, failed: str) -> Plan:
        """Bring the ``failed`` controller back after it was restarted (the paper's recovery procedure)."""

    def wire(self, cmd: str) -> str:
        """The string sent over SSH for ``cmd`` (a sh command), as root's login shell must receive it."""
        return as_is(cmd)

    def check_arbitrator(self, topo: Topology) -> None:
        """Raise LabError when this stack cannot build the topology's arbitrator mode."""
        mode = topo.lab.arbitrator
        if mode not in self.arbitrator_modes:
            allowed = " or ".join(f'"{m}"' for m in self.arbitrator_modes)
            raise LabError(f'the {self.name} stack cannot run arbitrator = "{mode}"; '
                           f"set [lab] arbitrator to {allowed} in {topo.source or 'the topology'}")

    def takeover(self, topo: Topology, failed: str) -> Plan:
        """The survivor's steps once ``failed`` is confirmed powered off (fenced by the caller, never here).

        arbitrator = "paper": nothing to do, the arbitrator map already holds the survivor's own path to the
        failed controller's volume (an empty plan). A stack offering "takeover" overrides this."""
        self.check_arbitrator(topo)
        self.survivor_of(topo, failed, "take over from")
        if topo.lab.arbitrator == "paper":
            return {}
        raise LabError(f'the {self.name} stack has no takeover plan for arbitrator = "{topo.lab.arbitrator}"')

    @staticmethod
    def survivor_of(topo: Topology, failed: str, verb: str = "recover") -> Host:
        """The other controller; LabError when ``failed`` is not a controller."""
        names = [h.name for h in topo.controllers]
        if failed not in names:
            raise LabError(f"'{failed}' is not a controller; {verb} one of {', '.join(names)}")
        return topo.peer(failed)

    # What the drill asks of hosts, typed: a command paired with its parser.

    def pool_status_fact(self) -> Fact[list[PoolStatus]]:
        """Every imported pool with its state, scan and permanent errors (no pool: an empty list)."""
        return Fact("pool-status", self.pool_status_command(), parse_zpool_status, "zpool", reads_stderr=True)

    def client_paths_fact(self, topo: Topology) -> Fact[dict[str, dict[str, str]]]:
        """Multipath name -> {path: "active" | "standby" | "failed"} on the client."""
        return Fact("client-paths", self.client_paths_command(topo), partial(self.parse_client_paths, topo), "paths")

    def client_portals_fact(self) -> Fact[dict[str, str]]:
        """The client's iSCSI disk -> the portal address it came from."""
        return Fact("client-portals", self.client_sessions_command(), self.parse_client_path_portals, "paths")

    def md5_fact(self, path: str) -> Fact[str]:
        """The file's md5, 32 lower-case hex digits (anything else: ParseError)."""
        return Fact("md5", self.md5_command(path), parse_md5, "md5", timeout_s=300.0)

    # What scenarios ask of hosts. Each returns shell text; the stack knows its tools, the scenario doesn't.

    def pool_status_command(self, pool: str | None = None) -> str:
        """Prints the status of one pool or every imported pool, with permanent errors listed
        (lab.parsers.zpool reads it). ZFS speaks the same on both stacks."""
        return f"zpool status -v {quote(pool)}" if pool else "zpool status -v"

    def pool_iostat_command(self, interval_s: int = 5) -> str:
        """What the paper's Figures 3 and 4 show on each controller."""
        return f"zpool iostat -v {quote(interval_s)}"

    def scrub_command(self, pool: str) -> str:
        """The survivor's first look at the failed controller's pool, before trusting its status."""
        return f"zpool scrub {quote(pool)}"

    def clock_read_command(self) -> str:
        """Prints the guest's wall clock as seconds since the epoch (GNU date has a fraction)."""
        return "date +%s.%N"

    def clock_set_command(self, epoch: float) -> str:
        """Sets the guest's wall clock to ``epoch`` seconds since the epoch, printing nothing."""
        return f"date -u -s @{epoch:.3f} >/dev/null"

    def mount_status_command(self, mountpoint: str) -> str:
        return f"df -h {quote(mountpoint)}"

    def make_random_file_command(self, path: str, size_mb: int) -> str:
        return f"head -c {size_mb * 1024 * 1024} /dev/urandom > {quote(path)}"

    def md5_command(self, path: str) -> str:
        """Prints the file's md5 as 32 hex digits alone."""
        raise NotImplementedError(f"the {self.name} stack does not say how to take an md5")

    def client_paths_command(self, topo: Topology) -> str:
        """Prints the state of every path of the client's multipath devices."""
        raise NotImplementedError(f"the {self.name} stack does not say how to list multipath paths")

    def parse_client_paths(self, topo: Topology, text: str) -> dict[str, dict[str, str]]:
        """Multipath name -> {path: "active" | "standby" | "failed"} from ``client_paths_command`` output."""
        raise NotImplementedError(f"the {self.name} stack does not say how to read multipath paths")

    def client_sessions_command(self) -> str:
        """Prints the client's iSCSI sessions with the disks each one brought."""
        raise NotImplementedError(f"the {self.name} stack does not say how to list iSCSI sessions")

    def parse_client_path_portals(self, text: str) -> dict[str, str]:
        """Disk name (as in ``parse_client_paths``) -> address of the portal it came from."""
        raise NotImplementedError(f"the {self.name} stack does not say how to read iSCSI sessions")

    def remount_commands(self, topo: Topology) -> list[str]:
        """Unmount (when mounted) and mount the client's filesystem so reads come from the disks, not the
        page cache."""
        raise NotImplementedError(f"the {self.name} stack does not say how to remount the client filesystem")

    def probe_command(self, topo: Topology, log_path: str, interval_s: float) -> str:
        """A loop that writes then reads a small record on the client's filesystem every interval, appending
        ``<start epoch> <end epoch> ok|fail`` lines to ``log_path`` (lab.parsers.probe reads them); the epochs
        are the guest clock's (``clock_read_command``)."""
        write_read = self.probe_write_read_command(f"{topo.client.mountpoint}/.beast-probe")
        now = self.clock_read_command()
        return (f"while :; do s=$({now}); if {write_read}; then r=ok; else r=fail; fi; "
                f'echo "$s $({now}) $r" >> {quote(log_path)}; sleep {quote(f"{interval_s:g}")}; done')

    def imports_watch_command(self, log_path: str, interval_s: float) -> str:
        """A loop on a controller appending ``<epoch> <pool,pool,...>`` (its imported pools) to ``log_path``
        every interval, each line synced to disk before the next (lab.drill.imports reads them)."""
        now = self.clock_read_command()
        return (f'while :; do echo "$({now}) $(zpool list -H -o name | paste -s -d , -)" >> {quote(log_path)}; '
                f'{self.sync_file_command(log_path)}; sleep {quote(f"{interval_s:g}")}; done')

    def sync_file_command(self, path: str) -> str:
        """Writes ``path``'s data to disk (FreeBSD's sync takes no file: every filesystem)."""
        return "sync"

    def cluster_views(self, topo: Topology) -> dict[str, str]:
        """Name -> command showing the cluster's view from a controller (membership, resources, links); none
        when the topology's arbitrator mode runs no cluster."""
        return {}

    def cluster_log_command(self, topo: Topology) -> str | None:
        """Prints the cluster's logs on a controller since it booted; None without a cluster."""
        return None

    def takeover_timeline(self, topo: Topology, log: str, struck: float, victim: str) -> dict[str, float]:
        """From the survivor's ``cluster_log_command`` output: seconds after the fault (``struck``, epoch) of
        each step of the cluster's takeover of ``victim``'s pool, in order; empty without a cluster."""
        return {}

    def probe_write_read_command(self, path: str) -> str:
        """Writes a small record to ``path`` past the page cache, then reads it back: the probe's one I/O."""
        raise NotImplementedError(f"the {self.name} stack has no I/O probe")

    def force_import_command(self, topo: Topology, pool: str) -> str:
        """A forced import of ``pool`` that mounts nothing: what a naive failover does (split-brain scenario)."""
        return " ".join(["zpool import -f -N", *self.pool_search_options(topo, pool), quote(pool)])

    def pool_search_options(self, topo: Topology, pool: str) -> list[str]:
        """Where ``zpool import`` looks for ``pool``'s disks (``-d ...``); none: the system's default search."""
        return []

    # Faults the drill injects to prove its checker can fail (``pytest scenarios/failover.py --inject ...``).

    def corrupt_disk_command(self, topo: Topology, disk: str) -> str:
        """Overwrite the middle of a shared disk with random data, behind ZFS's back."""
        raise NotImplementedError(f"the {self.name} stack cannot corrupt a disk")

    def fail_client_path_command(self, topo: Topology, multipath: str) -> str:
        """Mark the last path of one of the client's multipath devices failed: in the paper's order the
        passive one, through the peer of the pool's owner."""
        raise NotImplementedError(f"the {self.name} stack cannot fail a path")
