"""The lab's pytest options, shared by tests/ and scenarios/: the checkout's conftest.py imports them, and
`bst drill` loads this module as a plugin (``-p lab.pytest_options``) where no conftest.py is beside scenarios/
(an installed wheel)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("beast-lab")
    group.addoption("--topology", default=None, help="Topology TOML file (default: the paper's lab).")
    group.addoption("--provider", default=None, help="qemu or virtualbox (default: the topology's, auto).")
    group.addoption("--stack", default=None, help="linux or freebsd (default: the topology's, auto).")
    group.addoption("--artifacts", default="artifacts", help="Where run folders are written.")
    group.addoption("--keep-lab", default=None, choices=("never", "on-failure", "always"),
                    help="Keep the lab after a drill: never, on-failure (default) or always (default in CI: never).")
    group.addoption("--inject", default="", help="Faults that must turn the drill red, comma-separated: "
                    "corrupt-copy, pool-error, dead-path (proves the checker can fail).")
    group.addoption("--arbitrator", default=None,
                    help="Arbitrator mode(s) the scenarios run in: paper, takeover, cluster, all, or a comma list "
                    "(default: the topology's [lab] arbitrator).")
    group.addoption("--step", type=int, default=None,
                    help="Run only step N of the scenario on the lab a previous drill kept (bst drill --step N).")
    group.addoption("--lab-dir", default=None, help="Lab directory (default: .lab/<name> in the project).")
    group.addoption("--snapshot", default="provisioned",
                    help="Start the drill from this lab snapshot when it exists and fits the lab, instead of "
                    "rebuilding and provisioning (default: provisioned; 'none' always provisions).")
    group.addoption("--save-snapshot", action="store_true", default=False,
                    help="After provisioning, save the lab as the --snapshot snapshot (replacing it) for later runs.")
    group.addoption("--fail-on-skip", action="store_true", default=False,
                    help="A skipped test fails (nox -s tests: every test must run, none counted by being skipped).")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With --fail-on-skip a skip is reported as a failure that keeps the skip's reason."""
    report = (yield).get_result()
    if report.skipped and not hasattr(report, "wasxfail") and item.config.getoption("fail_on_skip"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under --fail-on-skip: {reason.removeprefix('Skipped: ')}"
