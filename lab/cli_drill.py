"""`bst drill`: the drill's own options, typed and listed in --help, turned into the pytest run of a scenario.

A drill is pytest on ``scenarios/`` (its conftest maps these options onto the orchestrator). Every option
the drill has is an option here, so a typo is refused in one line (exit 2) instead of reaching pytest;
pytest's own options pass only after ``--``. From an installed wheel the scenarios come from the wheel and
the lab's pytest options from ``lab.pytest_options`` (a checkout's conftest.py gives them otherwise)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lab.errors import LabError

PYTEST_MISSING = ("bst drill runs the scenarios with pytest, which is not installed in this Python; install it "
                  "with: pip install 'beast-lab[test,report]' (or pip install pytest)")


class KeepLab(StrEnum):
    """--keep-lab's policies (lab.drill.orchestrator.KEEP_POLICIES; a test keeps them equal)."""

    never = "never"
    on_failure = "on-failure"
    always = "always"


def run_pytest(argv: list[str]) -> int:
    """Run pytest with ``argv`` (after ``python -m pytest``) in this Python; its exit code."""
    return subprocess.call([sys.executable, "-m", "pytest", *argv])


def scenario_table(directory: Path) -> Table:
    """Each scenario of ``directory``: its name, its fault and the first line of its docstring."""
    from lab.drill.scenario import load_scenario
    from lab.scenario_names import scenario_names

    table = Table("scenario", "fault", "what it does", title=f"scenarios · {escape(str(directory))}")
    for name in scenario_names(directory):
        found = load_scenario(directory / f"{name}.py")
        table.add_row(escape(name), escape(found.fault), escape(found.doc.splitlines()[0] if found.doc else ""))
    return table


def _checked_injections(inject: str) -> str:
    from lab.drill.context import INJECTIONS

    faults = [f for f in inject.split(",") if f]
    unknown = [f for f in faults if f not in INJECTIONS]
    if unknown or not faults:
        raise LabError(f"--inject {inject!r} names no injection we have; use a comma list of "
                       f"{', '.join(INJECTIONS)}")
    return ",".join(faults)


def drill(
    pytest_args: Annotated[list[str] | None, typer.Argument(
        help="pytest's own options, after --: bst drill -- -x --junitxml=junit.xml", show_default=False)] = None,
    scenario: Annotated[str, typer.Option(help="A scenario of scenarios/ by name (failover, freeze, ...), or "
                                               "'all'; bst drill --list shows them.")] = "failover",
    arbitrator: Annotated[str | None, typer.Option(
        help="paper, takeover, cluster, a comma list or all (default: the topology's).")] = None,
    step: Annotated[int | None, typer.Option(help="Rerun only step N on the lab a previous drill kept.",
                                             min=1)] = None,
    keep_lab: Annotated[KeepLab | None, typer.Option(
        help="Keep the lab after the drill: never, on-failure (default) or always (default in CI: never).")] = None,
    inject: Annotated[str | None, typer.Option(
        help="Faults that must turn the drill red, comma-separated (corrupt-copy, pool-error, dead-path, ...): "
             "proves the checker can fail.")] = None,
    snapshot: Annotated[str | None, typer.Option(
        help="Start from the snapshot NAME-<mode> when it exists and fits the lab, instead of rebuilding and "
             "provisioning (default: provisioned; 'none' always provisions).")] = None,
    save_snapshot: Annotated[bool, typer.Option(
        "--save-snapshot", help="After provisioning, save the lab as the --snapshot snapshot (replacing it).")] = False,
    list_scenarios: Annotated[bool, typer.Option("--list", help="List the scenarios and what each does; run "
                                                                "nothing.")] = False,
    topology: Annotated[Path | None, typer.Option(
        "--topology", "-t", help="Topology TOML file (default: $BEAST_TOPOLOGY, else the paper's lab).")] = None,
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="auto, qemu or virtualbox.")] = None,
    stack: Annotated[str | None, typer.Option(help="freebsd or linux (default: the topology's).")] = None,
    lab_dir: Annotated[Path | None, typer.Option(help="Lab directory (default: .lab/<name> in the project).")] = None,
    artifacts: Annotated[Path | None, typer.Option(help="Where run folders are written (default: artifacts).")] = None,
) -> None:
    """Run a drill on the lab: a scenario of scenarios/ (default: the paper's failover), through pytest."""
    from lab.environment import env_topology_path
    from lab.scenario_names import scenario_target, scenarios_dir

    directory = scenarios_dir()
    if list_scenarios:
        Console().print(scenario_table(directory))
        return
    target = scenario_target(scenario, directory)
    if importlib.util.find_spec("pytest") is None:
        raise LabError(PYTEST_MISSING)
    topology = topology if topology is not None else env_topology_path()
    argv = [str(target)]
    if not (directory.parent / "conftest.py").is_file():
        argv[:0] = ["-p", "lab.pytest_options", "--rootdir", str(directory)]
    given = {"--arbitrator": arbitrator, "--step": step, "--keep-lab": keep_lab.value if keep_lab else None,
             "--inject": _checked_injections(inject) if inject is not None else None, "--snapshot": snapshot,
             "--topology": topology, "--provider": provider, "--stack": stack, "--lab-dir": lab_dir,
             "--artifacts": artifacts}
    argv += [f"{option}={value}" for option, value in given.items() if value is not None]
    if save_snapshot:
        argv.append("--save-snapshot")
    argv += pytest_args or []
    raise typer.Exit(run_pytest(argv))
