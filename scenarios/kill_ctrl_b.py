"""The paper's experiment with the roles swapped: ctrl-b is killed during the copy, ctrl-a survives."""

from __future__ import annotations

import pytest
from failover import (  # the same steps, another victim
    test_1_lab_is_provisioned_and_healthy,
    test_2_copy_starts,
    test_3_kill_a_controller_during_the_copy,
    test_4_copy_finishes_through_the_survivor_and_md5_matches,
    test_5_scrub_on_the_survivor,
    test_6_recovery_as_the_paper_describes,
    test_7_final_state,
)

pytestmark = pytest.mark.vm

FAULT = "kill-ctrl-b"
VICTIM = "ctrl-b"

__all__ = [
    "test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts", "test_3_kill_a_controller_during_the_copy",
    "test_4_copy_finishes_through_the_survivor_and_md5_matches", "test_5_scrub_on_the_survivor",
    "test_6_recovery_as_the_paper_describes", "test_7_final_state",
]
