"""Split brain: the private link between the controllers is cut while both live, during the copy.

Each controller then sees its peer as gone, and a naive failover would take the peer's pool. The drill
plays that naive failover on purpose (a forced import of the peer's pool, no fencing) on both sides while
the link is down: the arbitrator design must refuse it (multihost), and the client must not see wrong data.
"""

from functools import partial

from lab.drill import steps
from lab.drill.context import Drill
from lab.drill.nemesis import CutLink
from lab.drill.scenario import Scenario, Step
from lab.runfolder import EventKind

SPLIT_S = 30


def naive_takeover_on_both_sides(drill: Drill) -> None:
    topo, stack = drill.session.topo, drill.session.stack
    double = []
    for controller in topo.controllers:
        peer_pool = topo.pool_of(topo.peer(controller.name).name).name
        attempt = drill.session.run(controller.name, stack.force_import_command(topo, peer_pool), 120,
                                    f"naive-import-{peer_pool}")
        drill.event(EventKind.NAIVE_IMPORT, host=controller.name, pool=peer_pool, exit_code=attempt.exit_code,
                    output=(attempt.stdout + attempt.stderr).strip()[-500:])
        if peer_pool in {s.name for s in drill.pool_status(controller.name, "during-split")}:
            how = "held it already" if attempt.exit_code != 0 else "imported it"
            double.append(f"{controller.name} {how}: {peer_pool} on both controllers")
    drill.facts["double_imports"] = double


def split_and_try(drill: Drill) -> None:
    """The double imports the naive takeover made are facts the end's ``no_double_import`` judges with the
    watchers' logs."""
    steps.transient_fault(SPLIT_S, naive_takeover_on_both_sides)(drill)


SCENARIO = Scenario(
    fault="split-brain", victim="ctrl-a", nemesis=partial(CutLink, network="private"),
    steps=(steps.HEALTHY, steps.COPY,
           Step("cut_the_private_link_and_try_a_naive_takeover", split_and_try, strikes=True),
           steps.COPY_READ_BACK, steps.PATHS_AND_POOLS),
)
