"""Kill ctrl-a during the copy, then kill it again while it is being recovered.

A recovery is when a design is most fragile: pools are moving between controllers and the arbitrator maps
are being rebuilt. The drill kills the restarted ctrl-a part-way through the recovery plan, lets the
survivor take over again (in takeover mode), checks the client still reads and writes, then recovers
ctrl-a once more and checks the final state as the paper's drill does.
"""

from __future__ import annotations

import threading
import time

import failover
import pytest
from failover import (
    test_1_lab_is_provisioned_and_healthy,
    test_2_copy_starts,
    test_3_kill_a_controller_during_the_copy,
    test_4_copy_finishes_through_the_survivor_and_md5_matches,
)

from lab.drill import actions
from lab.drill.runner import Drill

pytestmark = pytest.mark.vm

FAULT = "kill-during-recovery"
VICTIM = "ctrl-a"
KILL_INTO_RECOVERY_S = 20
RECOVERY_JOIN_S = 900
IO_CHECK = ("dd if=/dev/urandom of={probe} bs=4096 count=16 oflag=direct,sync 2>&1 && "
            "dd if={probe} of=/dev/null bs=4096 iflag=direct 2>&1")

__all__ = ["test_1_lab_is_provisioned_and_healthy", "test_2_copy_starts", "test_3_kill_a_controller_during_the_copy",
           "test_4_copy_finishes_through_the_survivor_and_md5_matches", "test_6_recovery_as_the_paper_describes",
           "test_7_final_state"]


def test_5_kill_it_again_during_its_recovery(drill: Drill):
    drill.requires("test_3_")
    session, topo = drill.session, drill.session.topo
    session.start(drill.victim)
    session.provider.wait_for_ssh(drill.victim, topo.lab.boot_timeout_s)
    outcome: dict[str, str] = {}

    def recover() -> None:
        try:
            session.apply(session.stack.recovery(topo, drill.victim), "recovery-interrupted")
            outcome["result"] = "the recovery finished before the kill"
        except Exception as error:  # noqa: BLE001 - whatever the kill breaks is the observation
            outcome["result"] = f"{type(error).__name__}: {error}"

    worker = threading.Thread(target=recover, name="recovery", daemon=True)
    worker.start()
    time.sleep(KILL_INTO_RECOVERY_S)
    session.power_off(drill.victim)
    drill.facts["second_kill_at"] = time.time()
    worker.join(RECOVERY_JOIN_S)
    drill.facts["interrupted_recovery"] = outcome.get("result", f"still running after {RECOVERY_JOIN_S} s")
    drill.record.event("recovery-interrupted", result=drill.facts["interrupted_recovery"][:1000])
    actions.take_over(drill, drill.victim)
    probe = f"{topo.client.mountpoint}/.beast-after-second-kill"
    check = session.run(topo.client.host, IO_CHECK.format(probe=probe), 180, "io-after-second-kill")
    drill.claim("io_after_second_kill", check.exit_code == 0,
                f"direct write and read on {topo.client.mountpoint} exited {check.exit_code}"
                + (f": {(check.stdout + check.stderr).strip().splitlines()[-1:]}" if check.exit_code else ""))


# The paper's recovery and final checks, after step 5 (module order is step order).
test_6_recovery_as_the_paper_describes = failover.test_6_recovery_as_the_paper_describes
test_7_final_state = failover.test_7_final_state
