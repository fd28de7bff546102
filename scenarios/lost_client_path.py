"""The client loses its path to ctrl-a during the copy (ctrl-a's public link is cut), then gets it back.

Both controllers stay up: the client's I/O for ctrl-a's volume must go the passive way, through ctrl-b's
arbitrator and the private network back to ctrl-a, and nothing may be lost.
"""

from __future__ import annotations

import time

import pytest
from failover import test_1_lab_is_provisioned_and_healthy, test_2_copy_starts

from lab.drill import actions
from lab.drill.runner import Drill

pytestmark = pytest.mark.vm

FAULT = "lost-client-path"
VICTIM = "ctrl-a"
LINK = "public"
LOSS_S = 30

__all__ = ["test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts"]


def test_3_cut_the_clients_path_to_ctrl_a_during_the_copy(drill: Drill):
    drill.requires("test_2_")
    actions.into_the_copy(drill)
    with actions.link_cut(drill, drill.victim, LINK):
        time.sleep(LOSS_S / 2)
        drill.client_paths("during-loss")
        time.sleep(LOSS_S / 2)


def test_4_copy_finishes_and_reads_back(drill: Drill):
    drill.requires("test_3_")
    actions.copy_finishes_and_reads_back(drill)


def test_5_paths_come_back_and_pools_are_clean(drill: Drill):
    drill.requires("test_3_")
    actions.final_state_after_a_transient_fault(drill)
