"""Freeze ctrl-a (its VM paused) for longer than the iSCSI timeouts during the copy, then let it go on.

A frozen controller is the case a failover design fears most: it looks dead, then comes back and carries
on writing. No takeover is made (fencing cannot confirm a frozen VM is off); what multihost, the arbitrator
and the client do is recorded.
"""

from __future__ import annotations

import time

import pytest
from failover import test_1_lab_is_provisioned_and_healthy, test_2_copy_starts

from lab.drill import actions
from lab.drill.runner import Drill, StepError

pytestmark = pytest.mark.vm

FAULT = "freeze-ctrl-a"
VICTIM = "ctrl-a"
FREEZE_S = 30
"""Longer than open-iscsi's replacement_timeout and multihost's failure window."""

__all__ = ["test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts"]


def test_3_freeze_ctrl_a_during_the_copy(drill: Drill):
    drill.requires("test_2_")
    topo, provider = drill.session.topo, drill.session.provider
    actions.into_the_copy(drill)
    provider.pause(drill.victim)
    try:
        drill.facts["fault_at"] = time.time()
        drill.record.event("fault", action="pause", host=drill.victim, seconds=FREEZE_S)
        time.sleep(FREEZE_S / 2)
        drill.pool_status(topo.peer(drill.victim).name, "during-freeze")
        drill.client_paths("during-freeze")
        time.sleep(FREEZE_S / 2)
    finally:
        provider.resume(drill.victim)
        drill.record.event("fault-undone", action="resume", host=drill.victim)
    drill.facts["resumed_at"] = time.time()


def test_4_copy_finishes_and_reads_back(drill: Drill):
    drill.requires("test_3_")
    actions.copy_finishes_and_reads_back(drill)


def test_5_the_frozen_controller_and_the_pools_afterwards(drill: Drill):
    drill.requires("test_3_")
    own = drill.session.topo.pool_of(drill.victim).name
    statuses = {s.name: s for s in drill.pool_status(drill.victim, "after-freeze")}
    status = statuses.get(own)
    evidence = actions.errors_summary(status) if status else f"{drill.victim} no longer has {own} imported"
    errors = []
    for check in (lambda: drill.claim("frozen_pool_back", status is not None and status.state == "ONLINE", evidence),
                  lambda: actions.final_state_after_a_transient_fault(drill)):
        try:
            check()
        except StepError as error:
            errors.append(str(error))
    if errors:
        raise StepError("; ".join(errors))
