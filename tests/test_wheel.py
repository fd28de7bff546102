"""`bst` installed from a wheel (not an editable checkout) finds every file it uploads to guests or embeds
in images: the wheel is built from a copy of the source, installed into a fresh venv, and asked there.

About 15 s: it runs with the unit tests. Offline: the build uses this interpreter's setuptools (no build
isolation) and the install takes the wheel alone (``--no-deps --no-index``). The venv is made without the
base interpreter's packages; typer, rich and fabric come from this environment's own site-packages, listed
after the venv's in a ``.pth`` file. Python adds a path listed there without reading that path's own ``.pth``
files, so this environment's editable install of the checkout stays out of the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent("""\
    import json, site, sys
    from pathlib import Path
    import lab
    from lab.images.debian import IDENTITY_SCRIPT, IDENTITY_UNIT
    from lab.stacks import STACKS, get_stack
    from lab.stacks.linux import HELPERS, TAKEOVER_HELPERS, helper_files
    from lab.topology import default_topology_path, load_topology

    package = Path(lab.__file__).parent
    uploads = {**helper_files("paper"), **helper_files("takeover")}
    topo = load_topology()
    plans = {name: len(get_stack(name).provision(topo)) for name in STACKS}
    files = {}
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc"):
            files[str(path.relative_to(package))] = {"bytes": path.read_bytes().hex(), "mode": path.stat().st_mode}
    print(json.dumps({
        "package": str(package), "plans": plans, "helpers": len(HELPERS + TAKEOVER_HELPERS),
        "uploaded": len(uploads), "embedded": [str(IDENTITY_SCRIPT), str(IDENTITY_UNIT)],
        "topology": str(default_topology_path()), "files": files,
        "base_site_seen": [p for p in site.getsitepackages([sys.base_prefix]) if p in sys.path],
    }))
""")


def source_data_files() -> dict[str, Path]:
    """Every file of the ``lab`` package that is not Python: what the wheel must carry."""
    package = ROOT / "lab"
    return {str(p.relative_to(package)): p for p in sorted(package.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    result = subprocess.run(argv, cwd=cwd, env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT / "lab", source / "lab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "scenarios", source / "scenarios", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", source / "pyproject.toml")
    shutil.copy2(ROOT / "LICENSE", source / "LICENSE")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         str(source), "-w", str(work / "dist")], work)
    wheel = next((work / "dist").glob("beast_lab-*.whl"))
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work).stdout
    venv_site = Path(purelib.strip())
    (venv_site / "beast-test-environment.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         str(wheel)], work)
    result = run([str(python), "-c", CHECK], work)
    return {**json.loads(result.stdout.splitlines()[-1]), "venv": str(venv), "python": str(python), "work": work}


def test_the_package_comes_from_the_wheel_not_the_checkout(installed):
    assert installed["package"].startswith(installed["venv"]), installed["package"]


def test_the_venv_sees_none_of_the_base_interpreters_packages(installed):
    assert installed["base_site_seen"] == []


def test_every_stack_plans_from_the_installed_package(installed):
    assert set(installed["plans"]) == {"freebsd", "linux"} and all(installed["plans"].values())
    assert installed["uploaded"] == installed["helpers"] == 7


def test_every_data_file_is_installed_whole_and_executable_where_it_is(installed):
    wanted = source_data_files()
    assert "stacks/linux/scripts/beast-wait-block" in wanted and "images/beast-identity.sh" in wanted
    missing = sorted(set(wanted) - set(installed["files"]))
    assert not missing, f"the wheel lacks {missing}: add them to [tool.setuptools.package-data]"
    for name, path in wanted.items():
        got = installed["files"][name]
        assert bytes.fromhex(got["bytes"]) == path.read_bytes(), name
        assert bool(got["mode"] & 0o111) == bool(path.stat().st_mode & 0o111), f"{name}: executable bit differs"


def test_image_files_and_the_paper_topology_resolve_inside_the_install(installed):
    for path in (*installed["embedded"], installed["topology"]):
        assert path.startswith(installed["venv"]), path


def test_bst_drill_finds_the_scenarios_and_the_lab_options_from_the_wheel(installed):
    """--list loads every scenario from the install; pytest collects the installed failover scenario with the
    lab's options (``-p lab.pytest_options``: no conftest.py of the project beside it) without running it."""
    python, work = installed["python"], installed["work"]
    listed = run([python, "-m", "lab.cli", "drill", "--list"], work).stdout
    assert "failover" in listed and "isolate_ctrl_a" in listed
    found = run([python, "-c", "from lab.scenario_names import scenarios_dir; print(scenarios_dir())"], work).stdout
    assert found.strip().startswith(installed["venv"]), found
    collected = run([python, "-m", "pytest", "-p", "lab.pytest_options", "-p", "no:cacheprovider", "--rootdir",
                     found.strip(), "--collect-only", "-q", "--arbitrator=paper", f"{found.strip()}/failover.py"], work)
    assert "failover.py::paper::test_1_" in collected.stdout, collected.stdout


def test_the_wheel_says_its_license_and_carries_the_text(installed):
    dist_info = next(Path(installed["venv"]).rglob("beast_lab-*.dist-info"))
    metadata = (dist_info / "METADATA").read_text()
    assert "License-Expression: BSD-2-Clause" in metadata
    assert "2026 BeaST Lab contributors" in next(dist_info.rglob("LICENSE")).read_text()
