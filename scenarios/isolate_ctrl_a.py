"""ctrl-a loses both of its lab cables during the copy (private and public), 30 s, while it keeps running.

Its peer sees it gone on both of the cluster's links and the client loses its path to it: the case a
fence race is for. The paper's arbitrator keeps serving ctrl-a's volume through ctrl-b's cross import;
the takeover oracle does nothing (no controller was lost); the cluster fences one controller, ctrl-a
shooting second (its fencing of ctrl-b waits 5 s), takes its pool, and the drill starts ctrl-a again.
"""

from lab.drill import steps
from lab.drill.nemesis import Isolate
from lab.drill.scenario import Scenario, Step

ISOLATION_S = 30

SCENARIO = Scenario(
    fault="isolate-ctrl-a", victim="ctrl-a", nemesis=Isolate,
    steps=(steps.HEALTHY, steps.COPY,
           Step("cut_both_of_ctrl_as_cables_during_the_copy",
                steps.transient_fault(ISOLATION_S, lambda drill: drill.client_paths("during-isolation")),
                strikes=True),
           steps.COPY_READ_BACK,
           Step("a_fenced_controller_is_restarted_and_recovered", steps.fenced_controller_recovers),
           steps.PATHS_AND_POOLS),
)
