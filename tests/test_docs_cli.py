"""The docs cannot drift from the code: docs/cli.md is what `python -m lab.docs_cli` writes from it, and every
--option and BEAST_* variable README.md and docs/*.md name exists in the code (bst's options, the pytest
options of the conftests, `python -m lab.bench`'s) or belongs, by name, to another program the docs quote."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lab import docs_cli
from lab.bench import bench_parser
from lab.drill import fio_job
from lab.environment import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
VARIABLE_RE = re.compile(r"\bBEAST_[A-Z0-9_]+")

OTHER_PROGRAMS_OPTIONS = {
    "--variant": "VBoxManage createmedium", "--type": "VBoxManage modifymedium",
    "--delete": "VBoxManage unregistervm", "--machinereadable": "VBoxManage showvminfo",
    "--live": "VBoxManage snapshot take", "--name": "vagrant box add", "--ignore-provider": "vagrant validate",
    "--version": "vagrant and VBoxManage", "--noflush": "dmsetup suspend", "--noudevsync": "dmsetup",
    "--move": "crm_resource", "--clear": "crm_resource", "--junitxml": "pytest (after bst drill --)",
    "--local-repository": "act",
}
"""Options the docs quote from commands of other programs, each with the program."""
FIO_OPTIONS = set(OPTION_RE.findall(fio_job.write_command("/f") + fio_job.verify_command("/f", "label")))
"""fio's options as the drill gives them (lab.drill.fio_job), which docs/fio-workload.md quotes."""


def test_the_cli_reference_is_generated_from_the_code():
    assert (ROOT / "docs" / "cli.md").read_text() == docs_cli.render(), (
        "docs/cli.md differs from the code; regenerate it with: python -m lab.docs_cli")


def _conftest_options() -> set[str]:
    found = set()
    for conftest in (ROOT / "lab" / "pytest_options.py", ROOT / "scenarios" / "conftest.py"):
        for node in ast.walk(ast.parse(conftest.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "addoption":
                found |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return found


def code_options() -> set[str]:
    bst = {name for _, command in docs_cli.bst_commands() for p in command.params
           for name in (*p.opts, *getattr(p, "secondary_opts", ()))} | {"--help"}
    bench = {name for action in bench_parser()._actions for name in action.option_strings}
    return bst | bench | _conftest_options()


def _named(pattern: re.Pattern) -> dict[str, str]:
    """Each name the docs use -> the first file that uses it."""
    named: dict[str, str] = {}
    for doc in DOCS:
        for name in pattern.findall(doc.read_text()):
            named.setdefault(name, doc.relative_to(ROOT).as_posix())
    return named


def test_every_option_the_docs_name_exists():
    ours = code_options()
    missing = {name: doc for name, doc in _named(OPTION_RE).items()
               if name not in ours and name not in OTHER_PROGRAMS_OPTIONS and name not in FIO_OPTIONS}
    assert not missing, "options the docs name that no command has: " + ", ".join(
        f"{name} ({doc})" for name, doc in sorted(missing.items()))


def test_the_other_programs_options_are_not_ours_under_another_name():
    assert not set(OTHER_PROGRAMS_OPTIONS) & code_options() - {"--version"}


def test_every_environment_variable_the_docs_name_is_read_by_the_code():
    missing = {name: doc for name, doc in _named(VARIABLE_RE).items() if name not in VARIABLES}
    assert not missing, "variables the docs name that lab.environment.VARIABLES lacks: " + ", ".join(
        f"{name} ({doc})" for name, doc in sorted(missing.items()))


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_every_listed_variable_is_read_outside_the_list(variable):
    sources = [*(ROOT / "lab").rglob("*.py"), ROOT / "Vagrantfile"]
    readers = [s for s in sources if s.name != "environment.py" and variable in s.read_text()]
    assert readers, f"{variable} is in lab.environment.VARIABLES but no code reads it"


def test_the_check_finds_a_missing_option(monkeypatch):
    """The checker can fail: an option no command has is named with its file."""
    monkeypatch.setattr(f"{__name__}.DOCS", [ROOT / "README.md"])
    monkeypatch.setattr(f"{__name__}.code_options", lambda: set())
    with pytest.raises(AssertionError, match=r"--arbitrator \(README.md\)"):
        test_every_option_the_docs_name_exists()


def test_readme_is_a_front_door_whose_first_lines_are_the_two_commands():
    """At most 150 lines of at most 120 characters; .ci/run runs the two commands it opens with."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150 and max(len(line) for line in lines) <= 120
    assert lines[2:6] == ["```sh", *(line for line in lines[3:5]), "```"]
    assert lines[3].startswith("nox -s lab-up ") and lines[4].startswith("nox -s tests ")
    assert "nox -s lab-up && nox -s tests" in (ROOT / ".ci" / "run").read_text()
