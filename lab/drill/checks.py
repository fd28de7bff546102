"""What the drill judges, as pure functions over typed observations (parsed pool status, client paths).

Nothing here runs a command: the steps gather observations through the ``Drill`` and pass them in, so
every rule can be tested with hand-made observations.
"""

from __future__ import annotations

from lab.parsers.zpool import DataErrorsKind, PoolStatus
from lab.topology import Topology


def expected_layout(topo: Topology, arbitrator: str) -> dict[str, list[str]]:
    """Which pools each controller holds on a healthy lab: the paper's cross import gives both pools to
    both controllers; the takeover arbitrator gives each controller its own pool only."""
    if arbitrator in ("takeover", "cluster"):
        return {c.name: [topo.pool_of(c.name).name] for c in topo.controllers}
    return {c.name: list(topo.pools) for c in topo.controllers}


def pool_problems(statuses: list[PoolStatus], host: str, pools: list[str]) -> list[str]:
    by_name = {p.name: p for p in statuses}
    problems = []
    for pool in pools:
        if pool not in by_name:
            problems.append(f"{host} has not imported {pool}")
        elif by_name[pool].state != "ONLINE":
            problems.append(f"{pool} is {by_name[pool].state} on {host}")
    return problems


def layout_problems(observed: dict[str, list[PoolStatus]], expected: dict[str, list[str]]) -> list[str]:
    """Every pool missing, not ONLINE, or held where it should not be, per controller."""
    problems = []
    for controller, pools in expected.items():
        statuses = observed.get(controller, [])
        problems += pool_problems(statuses, controller, pools)
        extra = sorted({s.name for s in statuses} - set(pools))
        problems += [f"{controller} has imported {pool}, which it should not hold" for pool in extra]
    return problems


def path_problems(paths: dict[str, dict[str, str]], names: list[str]) -> list[str]:
    problems = []
    for name in names:
        states = paths.get(name, {})
        dead = [p for p, s in states.items() if s == "failed"]
        if len(states) != 2 or dead:
            problems.append(f"client multipath {name} has {len(states)} paths, failed: {', '.join(dead) or 'none'}")
    return problems


def is_clean(status: PoolStatus) -> bool:
    return status.errors.kind is DataErrorsKind.NONE and status.state == "ONLINE"


def errors_summary(status: PoolStatus) -> str:
    counts = status.config.root
    entries = ", ".join(status.errors.entries) or "none"
    scan = status.scan.text if status.scan else "no scan"
    return (f"{status.name}: {status.state}, CKSUM {counts.checksum_errors}, scan '{scan}', "
            f"permanent errors: {entries}")


def unclean_pools(observed: dict[str, list[PoolStatus]], expected: dict[str, list[str]]) -> list[str]:
    """The pools that are where they belong but carry errors, with their summary."""
    return [f"on {controller}: {errors_summary(s)}" for controller, pools in expected.items()
            for s in observed.get(controller, []) if s.name in pools and not is_clean(s)]
