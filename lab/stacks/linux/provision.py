"""The Linux stack's provisioning plan: which steps each host runs, in the paper's stage order.

Holds the order only; the steps themselves come from ``pools`` (disks and ZFS) and ``targets`` (iSCSI and
multipath). Knows nothing of recovery or of what the drill asks of hosts.
"""

from __future__ import annotations

from lab.plan import Plan
from lab.stacks.base import Stage
from lab.stacks.linux.cluster import cluster_provision_steps
from lab.stacks.linux.parts import OWNER_ONLY
from lab.stacks.linux.pools import base_steps, cross_import_steps, peer_partitions_step, pool_steps
from lab.stacks.linux.targets import (
    arbitrator_steps,
    client_steps,
    private_target_step,
    public_target_step,
    takeover_arbitrator_steps,
)
from lab.topology import Topology


def provision_plan(topo: Topology) -> Plan:
    """The paper's BeaST. In takeover mode (``[lab] arbitrator``) there is no cross import: each pool is
    imported by its owner only, with multihost=on, and each arbitrator map starts with the peer's iSCSI
    disk alone (see ``takeover_arbitrator_steps``). Cluster mode is takeover mode plus the cluster, set up
    once the arbitrator maps exist (``cluster``)."""
    takeover = topo.lab.arbitrator in OWNER_ONLY
    cluster = topo.lab.arbitrator == "cluster"
    plan: Plan = {}
    for host in topo.controllers:
        plan[host.name] = [
            *base_steps(topo, host),
            *pool_steps(topo, host),
            *([peer_partitions_step(topo, host, Stage.CROSS_IMPORT)] if takeover
              else cross_import_steps(topo, host)),
            private_target_step(topo, host, Stage.PRIVATE_TARGET),
            *(takeover_arbitrator_steps if takeover else arbitrator_steps)(
                topo, host, Stage.ARBITRATOR),
            *(cluster_provision_steps(topo, host) if cluster else ()),
            public_target_step(topo, host, Stage.PUBLIC_TARGET),
        ]
    plan[topo.client.host] = [
        *base_steps(topo, topo.client_host),
        *client_steps(topo, Stage.CLIENT),
    ]
    return plan
