"""Freeze ctrl-a (its VM paused) for longer than the iSCSI timeouts during the copy, then let it go on.

A frozen controller is the case a failover design fears most: it looks dead, then comes back and carries
on writing. The paper's and the takeover arbitrators make no takeover (the drill's oracle does not fence a
VM that may come back); the cluster fences the frozen controller once it misses its token and takes its
pool, and the drill then starts it again and runs its recovery. What multihost, the arbitrator, the
cluster and the client do is recorded.
"""

from lab.drill import checks, steps
from lab.drill.claims import Judged
from lab.drill.context import Drill
from lab.drill.nemesis import Freeze
from lab.drill.scenario import Scenario, Step

FREEZE_S = 30
"""Longer than open-iscsi's replacement_timeout and multihost's failure window."""


def look_while_frozen(drill: Drill) -> None:
    drill.pool_status(drill.survivor, "during-freeze")
    drill.client_paths("during-freeze")


def frozen_pool_back(drill: Drill) -> None:
    own = drill.session.topo.pool_of(drill.victim).name
    status = {s.name: s for s in drill.pool_status(drill.victim, "after-freeze")}.get(own)
    evidence = checks.errors_summary(status) if status else f"{drill.victim} no longer has {own} imported"
    drill.all_of(lambda: drill.claims(Judged("frozen_pool_back", status is not None and status.state == "ONLINE",
                                             evidence)),
                 lambda: steps.paths_come_back_and_pools_are_clean(drill))


SCENARIO = Scenario(
    fault="freeze-ctrl-a", victim="ctrl-a", nemesis=Freeze,
    steps=(steps.HEALTHY, steps.COPY,
           Step("freeze_ctrl_a_during_the_copy", steps.transient_fault(FREEZE_S, look_while_frozen), strikes=True),
           steps.COPY_READ_BACK,
           Step("a_fenced_controller_is_restarted_and_recovered", steps.fenced_controller_recovers),
           Step("the_frozen_controller_and_the_pools_afterwards", frozen_pool_back,
                judges=("frozen_pool_back", *steps.PATHS_AND_POOLS.judges))),
)
