"""Tracing the client's dead multipath paths back to the controllers that serve them."""

from __future__ import annotations

from lab.topology import Topology


def controllers_behind_dead_paths(topo: Topology, paths: dict[str, dict[str, str]],
                                  portals: dict[str, str]) -> set[str] | None:
    """The controllers whose paths are failed or missing from the client's maps.

    ``paths`` is the stack's map -> {disk: state}; ``portals`` the disk -> portal address of its iSCSI
    session. Each map has one path through the pool's owner and one through its peer, so a path that is
    missing altogether belongs to whichever of the two no live disk leads to. None when a disk cannot be
    traced to a controller: then no controller's trouble may be blamed for it.
    """
    by_address = {str(address): host.name for host in topo.controllers for address in host.addresses.values()}
    behind: set[str] = set()
    for multipath in topo.client.multipaths:
        owner = topo.pools[multipath.pool].owner
        seen = set()
        for disk, state in paths.get(multipath.name, {}).items():
            controller = by_address.get(portals.get(disk, ""))
            if controller is None:
                return None
            seen.add(controller)
            if state == "failed":
                behind.add(controller)
        behind |= {owner, topo.peer(owner).name} - seen
    return behind
