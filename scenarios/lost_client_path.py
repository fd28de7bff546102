"""The client loses its path to ctrl-a during the copy (ctrl-a's public link is cut), then gets it back.

Both controllers stay up: the client's I/O for ctrl-a's volume must go the passive way, through ctrl-b's
arbitrator and the private network back to ctrl-a, and nothing may be lost.
"""

from functools import partial

from lab.drill import steps
from lab.drill.nemesis import CutLink
from lab.drill.scenario import Scenario, Step

LOSS_S = 30

SCENARIO = Scenario(
    fault="lost-client-path", victim="ctrl-a", nemesis=partial(CutLink, network="public"),
    steps=(steps.HEALTHY, steps.COPY,
           Step("cut_the_clients_path_to_ctrl_a_during_the_copy",
                steps.transient_fault(LOSS_S, lambda drill: drill.client_paths("during-loss")), strikes=True),
           steps.COPY_READ_BACK, steps.PATHS_AND_POOLS),
)
