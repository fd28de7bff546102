"""The real executor applies the real FreeBSD plans to fake FreeBSD hosts that answer with recorded output.

Each ``FakeFreeBSDHost`` is a ``Runner``: it runs every command the executor sends (file checks, writes,
checks, commands, verifies) in a local ``sh`` (dash) with two documented changes, and nothing else:

* paths under ``/etc`` and ``/var/db`` are rewritten to the host's fake root (``<world>/hosts/<host>/root``),
  so the plan's files land in the sandbox; ``mkdir`` does the same for the client's mount point;
* the FreeBSD tools are first on ``PATH``: one shell wrapper per tool runs
  tests/fixtures/freebsd_session/fakebsd.py, which keeps a tiny state of the lab and prints the recorded
  real FreeBSD output listed in tests/fixtures/freebsd_session/SOURCES.md (the paper's ``zpool status``,
  the handbook's ``iscsictl -L`` states, geom(8)'s status table, the kernel's error strings). ``sleep`` is
  a no-op so that a verify that waits 60 polls for an iSCSI login fails in a moment.

The transcript the executor records is what the tests read: commands in order, outputs, skips, failures.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_stack_freebsd import PAPER_COMMANDS, PAPER_RECOVERY_COMMANDS

from lab import executor
from lab.executor import CommandResult, StepFailed, Transcript, apply_plan
from lab.plan import Plan
from lab.stacks.base import RecoveryStage
from lab.stacks.freebsd import FreeBSDStack, arbitrator_disk
from lab.topology import Topology, load_topology

FIXTURES = Path(__file__).parent / "fixtures"
SESSION = FIXTURES / "freebsd_session"
PARSERS = FIXTURES / "parsers"
TOOLS = ("zpool", "zfs", "iscsictl", "ctladm", "gmultipath", "gstripe", "service", "ifconfig", "sysctl",
         "hostname", "killall", "newfs", "fstyp", "mount", "shutdown", "sleep", "mkdir")
REAL_PATH = "/usr/bin:/bin"
PAPER_BOOTTIME = 1461078000
"""Tue Apr 19 15:00:00 2016 UTC, the day of the paper's scrub."""
FAKE_ROOT_PATHS = re.compile(r"(?<![\w./-])/(etc|var/db)(?=[/\s'\";]|$)")


class FakeFreeBSDHost:
    """A ``Runner`` for one fake host; see the module docstring for the two changes made to each command."""

    def __init__(self, world: Path, name: str) -> None:
        self.world, self.name = world, name
        self.root = world / "hosts" / name / "root"
        for base_dir in ("etc", "var/db"):  # directories every FreeBSD install has
            (self.root / base_dir).mkdir(parents=True, exist_ok=True)

    def run(self, cmd: str, timeout: float) -> CommandResult:
        local = FAKE_ROOT_PATHS.sub(lambda m: f"{self.root}/{m.group(1)}", cmd)
        env = {"PATH": f"{self.world / 'bin'}:{REAL_PATH}", "LC_ALL": "C", "FAKEBSD_WORLD": str(self.world),
               "FAKEBSD_HOST": self.name, "FAKEBSD_ROOT": str(self.root), "FAKEBSD_REAL_PATH": REAL_PATH}
        started = time.monotonic()
        try:
            done = subprocess.run(["sh", "-c", local], cwd=self.root, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return CommandResult(cmd, executor.TIMED_OUT_EXIT_CODE, "", f"timed out after {timeout:g} s",
                                 time.monotonic() - started)
        return CommandResult(cmd, done.returncode, done.stdout, done.stderr, time.monotonic() - started)


class Lab:
    """The fake hosts of one topology, their shared state file, and the transcripts of what was applied."""

    def __init__(self, tmp_path: Path, topo: Topology) -> None:
        self.world = tmp_path / "world"
        (self.world / "bin").mkdir(parents=True)
        for tool in TOOLS:
            wrapper = self.world / "bin" / tool
            wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S {SESSION / "fakebsd.py"} {tool} "$@"\n')
            wrapper.chmod(0o755)
        first_da = {h.name: int(arbitrator_disk(topo).removeprefix("da")) for h in topo.controllers}
        hosts = {name: {"hostname": "", "netif": [], "services": {}, "boottime": PAPER_BOOTTIME,
                        "sysctl": {"kern.iscsi.fail_on_disconnection": "0"}, "imported": [], "sessions": [],
                        "multipaths": {}, "stripes": {}, "mounts": [], "ctl_luns": [],
                        "first_da": first_da.get(name, 0), "next_da": first_da.get(name, 0), "inject": {}}
                 for name in [*(h.name for h in topo.controllers), topo.client.host]}
        (self.world / "world.json").write_text(json.dumps({"pools": {}, "hosts": hosts}))
        self.runners = {name: FakeFreeBSDHost(self.world, name) for name in hosts}

    def edit(self, change) -> None:
        state = json.loads((self.world / "world.json").read_text())
        change(state)
        (self.world / "world.json").write_text(json.dumps(state))

    def apply(self, plan: Plan) -> tuple[list, list[dict]]:
        sink = io.StringIO()
        try:
            outcomes = apply_plan(plan, self.runners, transcript=Transcript(sink), timeout=60)
        finally:
            self.transcript = [json.loads(line) for line in sink.getvalue().splitlines()]
        return outcomes, self.transcript

    def sh(self, host: str, cmd: str) -> str:
        result = self.runners[host].run(cmd, 30)
        assert result.ok, result
        return result.stdout


def commands(transcript: list[dict], host: str) -> list[str]:
    return [e["cmd"] for e in transcript if e["host"] == host and e["phase"] == "command"]


def paper_text(path: Path) -> list[str]:
    return [line.rstrip() for line in path.read_text().rstrip("\n").splitlines()]


def handbook_state(name: str) -> str:
    """The State column of a handbook ``iscsictl -L`` row."""
    row = (PARSERS / "iscsictl" / name).read_text().splitlines()[1]
    return re.split(r"\s{2,}", row.strip(), maxsplit=2)[2]


@pytest.fixture(scope="module")
def paper() -> Topology:
    return load_topology()


@pytest.fixture(scope="module")
def plan(paper) -> Plan:
    return FreeBSDStack().provision(paper)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory, paper, plan):
    """The paper's lab after one apply of the provision plan, and that apply's outcomes and transcript."""
    lab = Lab(tmp_path_factory.mktemp("provisioned"), paper)
    outcomes, transcript = lab.apply(plan)
    return lab, outcomes, transcript


def test_provision_runs_every_step_with_the_papers_commands_in_order(provisioned):
    lab, outcomes, transcript = provisioned
    # secondarycache=all is ZFS's default, so its check passes on a new pool and the paper's command is not sent.
    assert {(o.host, o.step): o.status.value for o in outcomes if o.status.value != "ran"} == {
        ("ctrl-a", "secondarycache=all ctrl-a_m0"): "skipped", ("ctrl-b", "secondarycache=all ctrl-b_m0"): "skipped"}
    for host, paper_commands in PAPER_COMMANDS.items():
        expected = [c for c in paper_commands if not c.startswith("zfs set secondarycache=all")]
        assert [c for c in commands(transcript, host) if c in paper_commands] == expected, host
    assert not any(e["phase"] in ("command", "verify") and e["exit_code"] for e in transcript)


def test_after_provisioning_the_tools_print_the_papers_output(provisioned):
    lab, _, _ = provisioned
    status = lab.sh("ctrl-a", "zpool status").rstrip("\n").splitlines()
    assert [line.rstrip() for line in status] == paper_text(PARSERS / "zpool_status" /
                                                             "paper_both_pools_with_logs_cache.txt")
    sessions = lab.sh("clnt-1", "iscsictl -L")
    assert re.search(r"^iqn.2016-01.local.sss.public:target0 +192.168.55.10 +Connected: da0 da1 $", sessions, re.M)
    assert re.search(r"^iqn.2016-01.local.sss.public:target0 +192.168.55.11 +Connected: da2 da3 $", sessions, re.M)
    arbitrator = lab.sh("ctrl-a", "gmultipath status CTRL_B_BACK").split()
    assert arbitrator[3:] == ["multipath/CTRL_B_BACK", "OPTIMAL", "da4", "(ACTIVE)", "zvol/ctrl-b_m0/v0", "(PASSIVE)"]
    assert "file=/dev/multipath/CTRL_B_BACK" in lab.sh("ctrl-a", "ctladm devlist -v")
    assert lab.sh("clnt-1", "mount").splitlines()[-1] == "/dev/stripe/ZDATA on /storage (ufs, local)"
    assert (lab.runners["ctrl-a"].root / "etc" / "ctl.conf").read_text().count("target iqn.") == 2




def test_a_second_apply_skips_every_step(provisioned, plan):
    lab, _, _ = provisioned
    outcomes, transcript = lab.apply(plan)
    assert {(o.host, o.step): o.status.value for o in outcomes if o.status.value != "skipped"} == {}
    assert [e for e in transcript if e["phase"] in ("write", "command", "verify")] == []


def test_a_check_that_misreads_the_output_is_caught(provisioned, plan):
    """The session replays real output, so a check grepping for text the tool does not print re-runs its step."""
    lab, _, _ = provisioned
    step = next(s for s in plan["ctrl-a"] if s.name == "log ctrl-a_m0 da0")
    wrong = step.check.replace('"logs"', '"log"')
    assert lab.runners["ctrl-a"].run(step.check, 30).ok
    assert not lab.runners["ctrl-a"].run(wrong, 30).ok


def test_zpool_create_on_a_disk_of_another_pool_fails_with_zfs_words(tmp_path, paper, plan):
    lab = Lab(tmp_path, paper)
    lab.edit(lambda w: w["pools"].update({"ctrl-a_m0": {
        "disks": ["ada1", "ada2"], "logs": [], "cache": [], "zvols": [], "props": {}, "pool_props": {},
        "damaged": False, "errors_on": []}}))  # left by an earlier lab whose controller died with it imported
    with pytest.raises(StepFailed) as failed:
        lab.apply(plan)
    assert str(failed.value) == (
        "ctrl-a: step 'zpool create ctrl-a_m0' failed: command `zpool create -m none ctrl-a_m0 /dev/ada1 "
        "/dev/ada2` exited 1: invalid vdev specification use '-f' to override the following errors: "
        "/dev/ada1 is part of potentially active pool 'ctrl-a_m0'")
    assert {o.step for o in failed.value.outcomes if o.host == "ctrl-b" and o.status.value == "ran"} >= {
        "zpool create ctrl-b_m0"}


@pytest.mark.parametrize("handbook", ["handbook_connection_refused.txt", "handbook_authentication_failed.txt"])
def test_an_iscsi_login_that_never_connects_fails_its_verify(tmp_path, paper, plan, handbook):
    lab = Lab(tmp_path, paper)
    state = handbook_state(handbook)
    lab.edit(lambda w: w["hosts"]["ctrl-a"].update({"iscsi_reason": {"192.168.56.11": state}}))
    step = next(s for s in plan["ctrl-a"] if s.name == "login 192.168.56.11")
    started = time.monotonic()
    with pytest.raises(StepFailed) as failed:
        lab.apply(plan)
    assert time.monotonic() - started < 60
    # The verify pipes iscsictl through awk, so the message cannot say why: "no output" (see the report).
    assert str(failed.value) == f"ctrl-a: step 'login 192.168.56.11' failed: verify `{step.verify}` exited 1: no output"
    polls = [e for e in lab.transcript if e["step"] == step.name and e["phase"] == "verify"]
    assert len(polls) == 1 and polls[0]["cmd"].startswith("i=0; until iscsictl -L")
    listing = lab.sh("ctrl-a", "iscsictl -L")
    assert re.search(rf"^iqn.2016-01.local.sss.private:target0 +192.168.56.11 +{state}$", listing, re.M)


def test_gmultipath_create_refused_by_the_kernel(tmp_path, paper, plan):
    lab = Lab(tmp_path, paper)
    refusal = (SESSION / "gmultipath_create_exists.txt").read_text().strip()
    lab.edit(lambda w: w["hosts"]["ctrl-a"]["inject"].update({"gmultipath create": refusal}))
    with pytest.raises(StepFailed) as failed:
        lab.apply(plan)
    assert str(failed.value) == (
        "ctrl-a: step 'multipath CTRL_B_BACK' failed: command `gmultipath create CTRL_B_BACK /dev/da4 "
        "/dev/zvol/ctrl-b_m0/v0` exited 1: gmultipath: Device CTRL_B_BACK already exist")


def test_recovery_of_ctrl_a_exports_reboots_imports_scrubs_and_clears(tmp_path, paper, plan, monkeypatch):
    monkeypatch.setattr(executor, "REBOOT_POLL_INTERVAL_S", 0.0)
    lab = Lab(tmp_path, paper)
    lab.apply(plan)

    def ctrl_a_crashed_and_booted(world: dict) -> None:
        world["pools"]["ctrl-a_m0"].update({"damaged": True, "errors_on": ["ctrl-b"]})  # ctrl-b's scrub saw it
        world["hosts"]["ctrl-a"].update({"boottime": int(time.time()) - 120, "sessions": [], "multipaths": {},
                                         "ctl_luns": []})  # ctld started before the pools were imported

    lab.edit(ctrl_a_crashed_and_booted)
    assert [line.rstrip() for line in lab.sh("ctrl-b", "zpool status -v").rstrip("\n").splitlines()] == \
        paper_text(PARSERS / "zpool_status" / "paper_scrub_permanent_errors.txt")
    assert re.fullmatch(r"\{ sec = \d+, usec = 0 \} \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n",
                        lab.sh("ctrl-a", "sysctl -n kern.boottime"))

    recovery = FreeBSDStack().recovery(paper, "ctrl-a")
    pools_only = {host: [s for s in steps if s.stage <= RecoveryStage.CLEAR]
                  for host, steps in recovery.items() if host != "clnt-1"}
    outcomes, transcript = lab.apply(pools_only)
    status = {(o.host, o.step): o.status.value for o in outcomes}
    assert status == {
        ("ctrl-a", "export pools"): "ran", ("ctrl-a", "reboot"): "ran",
        ("ctrl-a", "sysctl kern.iscsi.fail_on_disconnection"): "skipped",  # sysctl.conf at boot
        ("ctrl-a", "import pools"): "ran",
        ("ctrl-a", "scrub ctrl-a_m0"): "ran", ("ctrl-a", "scrub ctrl-b_m0"): "ran",
        ("ctrl-b", "scrub ctrl-a_m0"): "ran", ("ctrl-b", "scrub ctrl-b_m0"): "ran",
        ("ctrl-a", "clear ctrl-a_m0"): "ran", ("ctrl-a", "clear ctrl-b_m0"): "skipped",
        ("ctrl-b", "clear ctrl-a_m0"): "ran", ("ctrl-b", "clear ctrl-b_m0"): "skipped",
    }
    for host, paper_commands in PAPER_RECOVERY_COMMANDS.items():  # a healthy pool's clear is skipped
        expected = [c for c in paper_commands if c != "zpool clear ctrl-b_m0"]
        assert [c for c in commands(transcript, host) if c in paper_commands] == expected, host
    reboot_checks = [e["exit_code"] for e in transcript if e["step"] == "reboot" and e["phase"] == "check"]
    assert reboot_checks[0] != 0 and reboot_checks[-1] == 0
    clear_check = next(e for e in transcript
                       if e["host"] == "ctrl-a" and e["step"] == "clear ctrl-a_m0" and e["phase"] == "check")
    assert clear_check["exit_code"] != 0  # its own scrub showed ctrl-a the paper's permanent errors
    assert lab.sh("ctrl-a", "zpool status -x ctrl-a_m0") == "pool 'ctrl-a_m0' is healthy\n"
    assert os.path.exists(lab.runners["ctrl-a"].root / "var" / "db" / "beast-recovery-imported")
