"""The paper's experiment with the roles swapped: ctrl-b is killed during the copy, ctrl-a survives."""

from lab.drill import steps
from lab.drill.nemesis import PowerOff
from lab.drill.scenario import Scenario

SCENARIO = Scenario(fault="kill-ctrl-b", victim="ctrl-b", nemesis=PowerOff, steps=steps.PAPER_STEPS)
