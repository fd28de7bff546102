"""Kill ctrl-a during the copy, then kill it again while it is being recovered.

A recovery is when a design is most fragile: pools are moving between controllers and the arbitrator maps
are being rebuilt. The drill kills the restarted ctrl-a part-way through the recovery plan, lets the
survivor take over again (in takeover mode), checks the client still reads and writes, then recovers
ctrl-a once more and checks the final state as the paper's drill does.
"""

import threading
import time

from lab.drill import steps
from lab.drill.claims import Judged
from lab.drill.context import Drill
from lab.drill.nemesis import PowerOff
from lab.drill.scenario import Scenario, Step
from lab.drill.takeover import take_over
from lab.runfolder import EventKind, Reason
from lab.stacks.shell import quote

KILL_INTO_RECOVERY_S = 20
RECOVERY_JOIN_S = 900
IO_CHECK = ("dd if=/dev/urandom of={probe} bs=4096 count=16 oflag=direct,sync 2>&1 && "
            "dd if={probe} of=/dev/null bs=4096 iflag=direct 2>&1")


def kill_it_again_during_its_recovery(drill: Drill) -> None:
    steps.restart(drill)
    outcome: dict[str, str] = {}

    def recover() -> None:
        error = steps.recover(drill, "recovery-interrupted")
        outcome["result"] = error or "the recovery finished before the kill"

    worker = threading.Thread(target=recover, name="recovery", daemon=True)
    worker.start()
    time.sleep(KILL_INTO_RECOVERY_S)
    drill.nemesis.start(drill, drill.victim)
    drill.facts["second_kill_at"] = time.time()
    worker.join(RECOVERY_JOIN_S)
    drill.facts["interrupted_recovery"] = outcome.get("result", f"still running after {RECOVERY_JOIN_S} s")
    drill.event(EventKind.RECOVERY_INTERRUPTED, result=drill.facts["interrupted_recovery"][:1000])
    take_over(drill, drill.victim)
    topo = drill.session.topo
    probe = quote(f"{topo.client.mountpoint}/.beast-after-second-kill")
    check = drill.session.run(topo.client.host, IO_CHECK.format(probe=probe), 180, "io-after-second-kill")
    drill.claims(Judged("io_after_second_kill", check.exit_code == 0,
                        f"direct write and read on {topo.client.mountpoint} exited {check.exit_code}"
                        + (f": {(check.stdout + check.stderr).strip().splitlines()[-1:]}" if check.exit_code else ""),
                        reason=Reason.IO_FAILED))


SCENARIO = Scenario(
    fault="kill-during-recovery", victim="ctrl-a", nemesis=PowerOff,
    steps=(*steps.PAPER_STEPS[:4],
           Step("kill_it_again_during_its_recovery", kill_it_again_during_its_recovery,
                judges=(*steps.KILL.judges, "io_after_second_kill")),
           steps.RECOVERY, steps.FINAL),
)
