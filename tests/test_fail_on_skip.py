"""`--fail-on-skip` (nox -s tests passes it): a skipped test is a failure that keeps the skip's reason, so a
missing tool cannot pass a session by skipping what needs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUITE = """\
import pytest

def test_runs():
    assert True

def test_skips_inside():
    pytest.skip("no frobnicator on PATH")

@pytest.mark.skipif(True, reason="marked away")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False
"""


def run_suite(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rA",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_suite.py"), *options],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_without_the_option_a_skip_is_a_skip(tmp_path):
    done = run_suite(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout


def test_with_the_option_every_skip_fails_with_its_reason_and_xfail_is_left_alone(tmp_path):
    done = run_suite(tmp_path, "--fail-on-skip")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in done.stdout  # a skip in setup fails the setup: an error
    assert "FAILED test_suite.py::test_skips_inside" in done.stdout
    assert "ERROR test_suite.py::test_marked" in done.stdout
    assert "\nskipped under --fail-on-skip: no frobnicator on PATH\n" in done.stdout
    assert "\nskipped under --fail-on-skip: marked away\n" in done.stdout
