"""A scenario is a declaration: its fault (a nemesis and the controller it strikes) and its steps; each
step declares the claims it judges, and the scenario's claims follow from its steps.

Every module of ``scenarios/`` declares one ``SCENARIO``; the orchestrator runs its steps in order. No
scenario imports another: shared steps live in ``lab.drill.steps``, and adding a fault is one small file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.drill.claims import CLAIMS
from lab.drill.context import Drill
from lab.drill.nemesis import Nemesis
from lab.errors import LabError


@dataclass(frozen=True)
class Step:
    """One step of a scenario. ``strikes``: the nemesis strikes in it, so every later step needs it to
    have passed (the steps before it each need the one before). ``judges``: every claim it can judge, in
    the order it judges them, on any of its paths (those of the functions it calls included); judging
    another one fails the step (``Drill.claim``)."""

    name: str
    run: Callable[[Drill], None]
    strikes: bool = False
    judges: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [c for c in self.judges if c not in CLAIMS]
        if unknown:
            raise LabError(f"step {self.name} judges {unknown[0]!r}, which is not a claim; add it to "
                           f"lab.drill.claims.CLAIMS or use one of {', '.join(CLAIMS)}")


@dataclass(frozen=True)
class Scenario:
    fault: str
    """The fault's name (a row of the faults × modes matrix and a table of expectations.toml)."""
    victim: str
    """The controller the nemesis strikes."""
    nemesis: Callable[[], Nemesis]
    """Makes the scenario's nemesis (a fresh one per run)."""
    steps: tuple[Step, ...]
    name: str = ""
    """The module's name (set when loaded)."""
    doc: str = ""

    def __post_init__(self) -> None:
        if sum(s.strikes for s in self.steps) != 1:
            raise LabError(f"scenario {self.name or self.fault} must have exactly one step that strikes")

    @property
    def claims(self) -> tuple[str, ...]:
        """Every claim the steps judge, in the order they first judge them (what expectations.toml lists)."""
        return tuple(dict.fromkeys(claim for step in self.steps for claim in step.judges))

    def step_id(self, number: int) -> str:
        """``test_<N>_<name>`` for step N (from 1): how runs, events and ``--step N`` name it."""
        return f"test_{number}_{self.steps[number - 1].name}"

    @property
    def strike(self) -> int:
        """The number (from 1) of the step in which the nemesis strikes."""
        return next(i for i, s in enumerate(self.steps, 1) if s.strikes)

    def needs(self, number: int) -> str | None:
        """The step that must have passed before step N runs."""
        if number == 1:
            return None
        return self.step_id(number - 1 if number <= self.strike else self.strike)


def load_scenario(path: Path) -> Scenario:
    """The ``SCENARIO`` a module of scenarios/ declares, named after the module."""
    spec = importlib.util.spec_from_file_location(f"beast_scenarios.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise LabError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise LabError(f"{path} declares no SCENARIO = lab.drill.scenario.Scenario(...)")
    return dataclasses.replace(scenario, name=path.stem, doc=(module.__doc__ or "").strip())


def scenario_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if p.name != "conftest.py" and not p.name.startswith("_"))
