"""docs/drill.md's "Adding a fault" example is a scenario as written: saved as a module of its own it
loads, passes the Scenario's checks, names the claims its steps judge, and an expectations table for
those claims is one ``load_expectations`` accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from lab.drill.claims import CLAIMS, SAFETY_CLAIMS, load_expectations
from lab.drill.scenario import load_scenario, scenario_paths

ROOT = Path(__file__).resolve().parents[1]
DRILL_MD = ROOT / "docs" / "drill.md"


def example() -> tuple[str, str]:
    """The file name the section gives and the code of its first python block."""
    section = DRILL_MD.read_text().split("### Adding a fault", 1)[1]
    name = re.search(r"`scenarios/(\w+\.py)`", section)
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert name and code, "docs/drill.md's 'Adding a fault' lost its file name or its code block"
    return name.group(1), code.group(1)


def test_the_example_loads_as_a_scenario_and_checks_the_claims_its_steps_judge(tmp_path):
    name, code = example()
    (tmp_path / name).write_text(code)
    scenario = load_scenario(tmp_path / name)
    assert scenario.name == Path(name).stem and scenario.doc and scenario.fault == "cut-ctrl-b-private"
    assert scenario.claims[0] == "provisioned" and scenario.claims[-2:] == SAFETY_CLAIMS
    said = re.findall(r"\b[a-z][a-z0-9_]*\b", code.split("# Its claims", 1)[1])
    assert [w for w in said if w in CLAIMS] == list(scenario.claims), "the comment names the claims in order"
    assert scenario.fault not in {load_scenario(p).fault for p in scenario_paths(ROOT / "scenarios")}


def test_an_expectations_table_for_the_examples_claims_is_accepted(tmp_path):
    name, code = example()
    (tmp_path / name).write_text(code)
    scenario = load_scenario(tmp_path / name)
    shipped = tomllib.loads((ROOT / "scenarios" / "expectations.toml").read_text())
    like = shipped["linux"]["paper"]["lost-client-path"]
    table = tmp_path / "expectations.toml"
    table.write_text(f"[linux.paper.{scenario.fault}]\n" + "".join(f'{c} = "{like[c]}"\n' for c in scenario.claims))
    expectations = load_expectations(table, "linux", "paper", scenario.fault, scenario.claims)
    assert list(expectations) == list(scenario.claims)
