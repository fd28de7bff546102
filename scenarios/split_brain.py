"""Split brain: the private link between the controllers is cut while both live, during the copy.

Each controller then sees its peer as gone, and a naive failover would take the peer's pool. The drill
plays that naive failover on purpose (a forced import of the peer's pool, no fencing) on both sides while
the link is down: the arbitrator design must refuse it (multihost), and the client must not see wrong data.
"""

from __future__ import annotations

import time

import pytest
from failover import test_1_lab_is_provisioned_and_healthy, test_2_copy_starts

from lab.drill import actions
from lab.drill.runner import Drill

pytestmark = pytest.mark.vm

FAULT = "split-brain"
VICTIM = "ctrl-a"
LINK = "private"
SPLIT_S = 30

__all__ = ["test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts"]


def test_3_cut_the_private_link_and_try_a_naive_takeover(drill: Drill):
    drill.requires("test_2_")
    topo, stack = drill.session.topo, drill.session.stack
    actions.into_the_copy(drill)
    double = []
    with actions.link_cut(drill, drill.victim, LINK):
        time.sleep(SPLIT_S / 2)
        for controller in topo.controllers:
            peer_pool = topo.pool_of(topo.peer(controller.name).name).name
            attempt = drill.session.run(controller.name, stack.force_import_command(topo, peer_pool), 120,
                                        f"naive-import-{peer_pool}")
            drill.record.event("naive-import", host=controller.name, pool=peer_pool, exit_code=attempt.exit_code,
                               output=(attempt.stdout + attempt.stderr).strip()[-500:])
            held = {s.name for s in drill.pool_status(controller.name, "during-split")}
            if peer_pool in held:
                how = "held it already" if attempt.exit_code != 0 else "imported it"
                double.append(f"{controller.name} {how}: {peer_pool} on both controllers")
        time.sleep(SPLIT_S / 2)
    drill.claim("no_double_import", not double,
                "; ".join(double) or "each controller refused its peer's pool while the link was down")


def test_4_copy_finishes_and_reads_back(drill: Drill):
    drill.requires("test_3_")
    actions.copy_finishes_and_reads_back(drill)


def test_5_paths_come_back_and_pools_are_clean(drill: Drill):
    drill.requires("test_3_")
    actions.final_state_after_a_transient_fault(drill)
