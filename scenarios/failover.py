"""The paper's experiment: copy a file, kill ctrl-a, check md5, scrub, recover. Steps run in order.

Each step records what it observed in the run folder and checks the paper's claims against
scenarios/expectations.toml; the run fails on any verdict that file does not expect.
"""

from lab.drill import steps
from lab.drill.nemesis import PowerOff
from lab.drill.scenario import Scenario

SCENARIO = Scenario(fault="kill-ctrl-a", victim="ctrl-a", nemesis=PowerOff, steps=steps.PAPER_STEPS)
