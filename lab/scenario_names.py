"""Which file `bst drill --scenario` runs: a scenario of ``scenarios/`` named by its name (or by its path),
never a file elsewhere. pytest imports what it is given, so a path out of ``scenarios/`` would run any code."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from lab.errors import LabError

SCENARIO_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
NOT_SCENARIOS = ("conftest",)


def scenarios_dir() -> Path:
    """``scenarios/`` beside the ``lab`` package: the checkout's, or the one an installed wheel carries."""
    directory = Path(__file__).resolve().parents[1] / "scenarios"
    if not (directory / "conftest.py").is_file():
        raise LabError(f"the drill's scenarios are not at {directory}; run bst from a checkout of BeaST Lab, or "
                       "install a beast-lab wheel built with them (pip install .)")
    return directory


def scenario_names(directory: Path) -> list[str]:
    """The scenarios in ``directory``: its regular ``.py`` files (not links) named like a module."""
    names = []
    for entry in directory.glob("*.py"):
        if (SCENARIO_NAME_RE.fullmatch(entry.stem) and entry.stem not in NOT_SCENARIOS
                and stat.S_ISREG(entry.lstat().st_mode)):
            names.append(entry.stem)
    return sorted(names)


def scenario_target(scenario: str, directory: Path | None = None) -> Path:
    """The file (or, for ``all``, the directory) pytest runs; LabError naming the valid scenarios otherwise."""
    directory = directory or scenarios_dir()
    if scenario == "all":
        return directory
    known = scenario_names(directory)
    choices = f"use one of: {', '.join(known)}, or all"
    if "/" in scenario or os.sep in scenario:
        path = Path(os.path.abspath(scenario))
        if path.parent == directory.resolve() and path.suffix == ".py" and path.stem in known:
            return directory / path.name
        raise LabError(f"--scenario {scenario!r} is not a file of {directory}; a drill runs only its scenarios, "
                       f"by name: {choices}")
    name = scenario.removesuffix(".py")
    if name not in known:
        raise LabError(f"no scenario {scenario!r}; {choices}")
    return directory / f"{name}.py"
