"""`nox -s bench`: how long the lab's slow parts take on this machine, and how a failover goes, run after run.

The figures (image, lab up, boot, provisioning, snapshots) go as medians to bench/results.json; the
failover drills (``--failover N``, lab/bench_failover.py) to artifacts/bench/<UTC stamp>/. Both run on
their own lab directory (``.lab/bench``) so a user's lab is never touched, and remove it after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lab.drill.claims import ARBITRATORS
from lab.errors import LabError
from lab.plan import Plan
from lab.topology import Topology, load_topology

console = Console()
SNAPSHOT = "bench"


def serialized(plan: Plan) -> Plan:
    """The same plan with the hosts of each stage one after the other instead of in parallel."""
    hosts = list(plan)
    return {host: [dataclasses.replace(step, stage=step.stage * len(hosts) + index) for step in steps]
            for index, (host, steps) in enumerate(plan.items())}


@dataclasses.dataclass
class Figure:
    name: str
    what: str
    samples: list[float]

    @property
    def median(self) -> float | None:
        return round(statistics.median(self.samples), 2) if self.samples else None

    def to_json(self) -> dict:
        return {"what": self.what, "median_s": self.median, "runs": len(self.samples),
                "samples_s": [round(s, 2) for s in self.samples]}


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "memory_gib": round(memory_kib / 1024 / 1024, 1), "python": platform.python_version()}


def bench(topo: Topology, runs: int, provision: bool, lab_dir: Path) -> tuple[list[Figure], dict]:
    from lab.images import debian
    from lab.providers.qemu import QemuProvider
    from lab.session import LabSession
    from lab.stacks import get_stack

    figures: dict[str, Figure] = {}

    def add(name: str, what: str, seconds: float) -> None:
        figures.setdefault(name, Figure(name, what, [])).samples.append(seconds)
        console.print(f"  {name}: {seconds:.1f} s")

    image = debian.ensure_debian_image()
    recorded = json.loads((image.root_disk.parent / "image.json").read_text())
    add("image_build", "Debian guest image build (debootstrap, kernel, zfs-dkms), as recorded when built",
        float(recorded["build_seconds"]))
    add("image_cached", "guest image lookup when it is cached", timed(debian.ensure_debian_image))

    provider = QemuProvider(topo, lab_dir=lab_dir)
    stack = get_stack("linux")
    plan = stack.provision(topo)
    provider.down()
    accel = "unknown"
    try:
        for run in range(runs):
            console.print(f"[bold]run {run + 1}/{runs}[/]")
            add("lab_up", "three VMs from the cached image to SSH (shared disks, switches, boot)", timed(provider.up))
            add("lab_up_noop", "bst up on a lab that is up", timed(provider.up))
            accel = next((s.accel for s in provider.status() if s.accel), accel)
            for host in topo.hosts:
                provider.power_off(host)
                add(f"boot_to_ssh_{host}", f"{host} from power-off to SSH", timed(lambda h=host: provider.start(h)))
            if provision:
                session = LabSession(topo, provider, stack)
                add("provision_parallel", "linux provisioning, hosts of a stage in parallel",
                    timed(lambda s=session: s.apply(plan, "bench")))
                add("snapshot_save", "bst snapshot save of the provisioned lab (RAM, devices, every disk)",
                    timed(lambda: provider.snapshot_save(SNAPSHOT, replace=True)))
                add("snapshot_restore", "bst snapshot restore of the provisioned lab, until SSH on every host",
                    timed(lambda: provider.snapshot_restore(SNAPSHOT)))
                provider.down()
                add("rebuild_and_provision", "what a drill does without a snapshot: lab removed, up again, "
                    "provisioned (parallel)", timed(lambda: rebuild_and_provision(provider, topo, stack, plan)))
                provider.down()
                provider.up()
                session = LabSession(topo, provider, stack)
                add("provision_serial", "linux provisioning, hosts one after the other",
                    timed(lambda s=session: s.apply(serialized(plan), "bench")))
            provider.down()
    finally:
        provider.down()
        if any(m.name == SNAPSHOT for m in provider.snapshots()):
            provider.snapshot_delete(SNAPSHOT)
    return list(figures.values()), {**machine(), "accel": accel}


def rebuild_and_provision(provider, topo: Topology, stack, plan: Plan) -> None:
    from lab.session import LabSession

    provider.up()
    LabSession(topo, provider, stack).apply(plan, "bench")


def comparisons(figures: list[Figure]) -> dict[str, dict]:
    """How many times faster a snapshot restore is than what it replaces, from the medians."""
    medians = {f.name: f.median for f in figures}
    result = {}
    for slow, what in (("rebuild_and_provision", "rebuilding and provisioning the lab"),
                       ("provision_parallel", "provisioning a lab that is up")):
        fast_s, slow_s = medians.get("snapshot_restore"), medians.get(slow)
        if fast_s and slow_s:
            result[f"snapshot_restore_vs_{slow}"] = {"what": f"snapshot restore instead of {what}",
                                                     "times_faster": round(slow_s / fast_s, 1),
                                                     "seconds_saved": round(slow_s - fast_s, 1)}
    return result


def bench_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m lab.bench`` (also rendered into docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="python -m lab.bench", description=__doc__.splitlines()[0],
        epilog="With --failover N only the failover drills run; add --runs or --provision to time the lab's slow "
        "parts as well (then those run first, on the same lab directory, and go to --output).")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per figure (default 3); with --failover, asks for the figures too")
    parser.add_argument("--provision", action="store_true",
                        help="also time provisioning (parallel vs serial) and snapshot save/restore "
                        "vs rebuilding and provisioning; with --failover, asks for the figures too")
    parser.add_argument("--failover", type=int, default=0, metavar="N",
                        help="run N kill-ctrl-a drills per arbitrator mode, each from the mode's snapshot (saved by "
                        "its first run), into artifacts/bench/<UTC stamp>/ (bench.json, bench.html; "
                        "artifacts/bench/latest points at it)")
    parser.add_argument("--arbitrator", default=None, metavar="MODES",
                        help=f"with --failover: the modes, a comma list of {', '.join(ARBITRATORS)}, or all (default)")
    parser.add_argument("--report", nargs="?", const=str(Path("artifacts") / "bench" / "latest"), default=None,
                        metavar="DIR", help="write DIR/bench.html again from DIR/bench.json and print its table, "
                        "running nothing (default DIR: artifacts/bench/latest)")
    parser.add_argument("--topology", default=None, help="topology TOML file (default: the paper's lab)")
    parser.add_argument("--output", default="bench/results.json", help="where the figures go (not the drills)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser()
    args = parser.parse_args(argv)
    from lab import bench_failover

    def refuse(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    if args.report is not None:
        if args.failover or args.runs is not None or args.provision:
            return refuse("--report runs nothing; leave out --failover, --runs and --provision")
        try:
            data = bench_failover.load_bench(Path(args.report))
            path = bench_failover.write_report(Path(args.report), data)
        except LabError as error:
            return refuse(str(error))
        console.print(bench_failover.stats_table(data["runs"]))
        console.print(f"written to {path}", markup=False, highlight=False)
        return 0
    if args.failover < 0 or (args.runs is not None and args.runs < 1):
        return refuse("--failover must be 0 or more and --runs 1 or more")
    if args.arbitrator is not None and not args.failover:
        return refuse("--arbitrator chooses the modes of the failover drills; give --failover N too")
    try:
        modes = bench_failover.parse_arbitrators("all" if args.arbitrator is None else args.arbitrator)
    except LabError as error:
        return refuse(str(error))
    lab_dir = Path(".lab") / "bench"
    if not args.failover or args.runs is not None or args.provision:
        bench_figures(args, lab_dir)
    if args.failover:
        command = shlex.join(["python", "-m", "lab.bench", *(sys.argv[1:] if argv is None else argv)])
        try:
            _, status = bench_failover.failover_bench(args.failover, modes, args.topology, lab_dir,
                                                      Path("artifacts"), console, machine(), command=command)
        except LabError as error:
            print(f"{parser.prog}: {error}", file=sys.stderr)
            return 1
        return status
    return 0


def bench_figures(args: argparse.Namespace, lab_dir: Path) -> None:
    """The lab's slow parts (image, lab up, boot, and with --provision provisioning and snapshots), as medians."""
    figures, where = bench(load_topology(args.topology), args.runs or 3, args.provision, lab_dir)
    title = f"BeaST Lab benchmarks · {where['cpu']} · {where['accel']}"
    table = Table("figure", "median s", "runs", "what", title=title)
    for figure in figures:
        table.add_row(figure.name, f"{figure.median:.1f}", str(len(figure.samples)), figure.what)
    console.print(table)
    compared = comparisons(figures)
    for comparison in compared.values():
        console.print(f"{comparison['what']}: {comparison['times_faster']}x faster, "
                      f"{comparison['seconds_saved']} s saved")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": where,
                                  "figures": {f.name: f.to_json() for f in figures},
                                  "comparisons": compared}, indent=2) + "\n")
    console.print(f"written to {output}", markup=False, highlight=False)


if __name__ == "__main__":
    raise SystemExit(main())
