"""Kill ctrl-a during the copy, then kill it again while it is being recovered.

A recovery is when a design is most fragile: pools are moving between controllers and the arbitrator maps
are being rebuilt. The drill kills the restarted ctrl-a part-way through the recovery plan, lets the
survivor take over again (in takeover mode), checks the client still reads and writes, then recovers
ctrl-a once more and checks the final state as the paper's drill does.
"""

from lab.drill import steps
from lab.drill.claims import Judged
from lab.drill.context import Drill, StepError
from lab.drill.nemesis import PowerOff
from lab.drill.scenario import Scenario, Step
from lab.drill.takeover import take_over
from lab.runfolder import EventKind, Reason

KILL_INTO_RECOVERY_S = 20
RECOVERY_JOIN_S = 900


def recovery_to_be_interrupted(drill: Drill) -> None:
    error = steps.recover(drill, "recovery-interrupted")
    if error:
        raise StepError(error)


def kill_it_again_during_its_recovery(drill: Drill) -> None:
    steps.restart(drill)
    struck = steps.strike_during(drill, recovery_to_be_interrupted, KILL_INTO_RECOVERY_S, RECOVERY_JOIN_S,
                                 what="the recovery", fact="interrupted_recovery")
    drill.facts["second_kill_at"] = struck.at
    drill.event(EventKind.RECOVERY_INTERRUPTED, result=struck.outcome[:1000])
    take_over(drill, drill.victim)
    topo = drill.session.topo
    probe = drill.session.stack.probe_write_read_command(f"{topo.client.mountpoint}/.beast-after-second-kill")
    check = drill.session.run(topo.client.host, probe, 180, "io-after-second-kill")
    drill.claims(Judged("io_after_second_kill", check.exit_code == 0,
                        f"a synced write and read back on {topo.client.mountpoint} (the stack's probe) "
                        f"{check.ending}" + (f": {check.last_line()}" if check.exit_code != 0 else ""),
                        reason=Reason.IO_FAILED))


SCENARIO = Scenario(
    fault="kill-during-recovery", victim="ctrl-a", nemesis=PowerOff,
    steps=(*steps.PAPER_STEPS[:4],
           Step("kill_it_again_during_its_recovery", kill_it_again_during_its_recovery,
                judges=(*steps.KILL.judges, "io_after_second_kill")),
           steps.RECOVERY, steps.FINAL),
)
