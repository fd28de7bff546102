"""The real executor applies the real FreeBSD plans to fake FreeBSD hosts that answer with recorded output.

Each host is reached the way a real one is: through ``FabricRunner`` with the freebsd stack's wire, so the
fake receives the exact string sent over SSH (file checks, writes, checks, commands, verifies). A
``FakeFreeBSDConnection`` stands in for the SSH connection and does what sshd does with root's login shell:
it runs the string with ``tcsh -f -c`` (Debian's tcsh is FreeBSD's csh; ``-f`` skips the rc files, root's
.cshrc sets only aliases and the path), so anything csh would reject or expand fails here too. From there
on, two documented changes, and nothing else:

* the wire's ``/bin/sh`` is ``rooted-sh`` (fakebsd.py): it moves paths under ``/etc`` and ``/var/db`` to the
  host's fake root (``<world>/hosts/<host>/root``) in the decoded script and runs it with the local ``sh``
  (dash); ``mkdir`` does the same for the client's mount point;
* the FreeBSD tools are first on ``PATH``: one shell wrapper per tool runs
  tests/fixtures/freebsd_session/fakebsd.py, which keeps a tiny state of the lab and prints the recorded
  real FreeBSD output listed in tests/fixtures/freebsd_session/SOURCES.md (the paper's ``zpool status``,
  the handbook's ``iscsictl -L`` states, geom(8)'s status table, the kernel's error strings). ``sleep`` is
  a no-op so that a verify that waits 60 polls for an iSCSI login fails in a moment. ``b64decode`` is
  FreeBSD's algorithm (uudecode.c), ``zpool import`` refuses a pool last accessed under another hostid
  without ``-f`` (each host's hostid comes from its own SMBIOS UUID until /etc/hostid says otherwise, as
  rc.d/hostid does), ``dd`` to a pool's disk needs ``kern.geom.debugflags=0x10``, ``geom disk list``
  shows each disk's serial as its ident.

The commands the executor sends (labelled by step and phase) are what the tests read: commands in order,
outputs, skips, failures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke.exceptions import CommandTimedOut
from test_stack_freebsd import PAPER_COMMANDS, PAPER_RECOVERY_COMMANDS

from lab import executor
from lab.executor import FabricRunner, StepFailed, apply_plan
from lab.plan import Plan
from lab.stacks.base import RecoveryStage
from lab.stacks.freebsd import FreeBSDStack, arbitrator_disk, disk_device
from lab.topology import Topology, load_topology

FIXTURES = Path(__file__).parent / "fixtures"
SESSION = FIXTURES / "freebsd_session"
PARSERS = FIXTURES / "parsers"
TOOLS = ("zpool", "zfs", "iscsictl", "ctladm", "gmultipath", "gstripe", "service", "ifconfig", "sysctl",
         "hostname", "killall", "newfs", "fstyp", "mount", "shutdown", "sleep", "mkdir", "b64decode", "rooted-sh",
         "geom", "dd", "camcontrol")
REAL_PATH = "/usr/bin:/bin"
PAPER_BOOTTIME = 1461078000
"""Tue Apr 19 15:00:00 2016 UTC, the day of the paper's scrub."""
BOX_SYSCTL_CONF = "debug.debugger_on_panic=0\nkern.panic_reboot_wait_time=0\n"
"""What the FreeBSD 10.3 Vagrant box's /etc/sysctl.conf already holds (a panic reboots at once)."""
WIRE_SH = re.compile(r"(?<!\S)/bin/sh(?!\S)")
TCSH = shutil.which("tcsh")


class FakeFreeBSDConnection:
    """Stands in for a Fabric connection to one fake host: runs the wire string under root's csh."""

    def __init__(self, world: Path, name: str) -> None:
        self.world, self.name = world, name
        self.host, self.port = "127.0.0.1", 2222
        self.root = world / "hosts" / name / "root"
        for base_dir in ("etc", "var/db"):  # directories every FreeBSD install has
            (self.root / base_dir).mkdir(parents=True, exist_ok=True)
        self.sent: list[str] = []

    def run(self, cmd: str, hide: bool, warn: bool, timeout: float, in_stream: bool) -> SimpleNamespace:
        if TCSH is None:
            pytest.fail("tcsh is not installed: the fake FreeBSD runs every command under csh (apt-get install tcsh)")
        self.sent.append(cmd)
        local = WIRE_SH.sub(str(self.world / "bin" / "rooted-sh"), cmd)
        env = {"PATH": f"{self.world / 'bin'}:{REAL_PATH}", "LC_ALL": "C", "FAKEBSD_WORLD": str(self.world),
               "FAKEBSD_HOST": self.name, "FAKEBSD_ROOT": str(self.root), "FAKEBSD_REAL_PATH": REAL_PATH}
        try:
            done = subprocess.run([TCSH, "-f", "-c", local], cwd=self.root, env=env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            raise CommandTimedOut(SimpleNamespace(stdout=expired.stdout or "", stderr=expired.stderr or ""),
                                  timeout) from None
        return SimpleNamespace(exited=done.returncode, stdout=done.stdout, stderr=done.stderr)

    def close(self) -> None:
        pass


def fake_hostid(name: str) -> tuple[str, str]:
    """Each VM's own SMBIOS UUID (VirtualBox makes one per VM) and the hostid rc.d/hostid derives from it."""
    smbios = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.vm"))
    return smbios, "0x" + hashlib.md5(smbios.encode()).hexdigest()[:8]


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
        shared = {disk_device(topo, d): [topo.disks[d].serial, topo.disks[d].size_mb << 20] for d in topo.disks}
        hosts = {name: {"hostname": "", "netif": [], "services": {}, "boottime": PAPER_BOOTTIME,
                        "smbios_uuid": fake_hostid(name)[0],
                        "sysctl": {"kern.iscsi.fail_on_disconnection": "0", "kern.geom.debugflags": "0",
                                   "kern.hostuuid": fake_hostid(name)[0], "kern.hostid": fake_hostid(name)[1]},
                        "imported": [], "sessions": [], "disks": shared if name in first_da else {},
                        "multipaths": {}, "stripes": {}, "mounts": [], "ctl_luns": [],
                        "first_da": first_da.get(name, 0), "next_da": first_da.get(name, 0), "inject": {}}
                 for name in [*(h.name for h in topo.controllers), topo.client.host]}
        (self.world / "world.json").write_text(json.dumps({"pools": {}, "hosts": hosts}))
        self.connections = {name: FakeFreeBSDConnection(self.world, name) for name in hosts}
        for connection in self.connections.values():
            (connection.root / "etc" / "sysctl.conf").write_text(BOX_SYSCTL_CONF)
        self.runners = {name: FabricRunner(c, wire=FreeBSDStack().wire) for name, c in self.connections.items()}

    def edit(self, change) -> None:
        state = json.loads((self.world / "world.json").read_text())
        change(state)
        (self.world / "world.json").write_text(json.dumps(state))

    def apply(self, plan: Plan) -> tuple[list, list[dict]]:
        """The outcomes, and every command sent as host, step, phase (read back from its label), cmd, exit."""
        results: list = []

        class Recorded:
            def __init__(self, runner: FabricRunner) -> None:
                self.runner = runner

            def run(self, cmd: str, timeout: float, label: str = ""):
                results.append(self.runner.run(cmd, timeout, label))
                return results[-1]

        try:
            outcomes = apply_plan(plan, {name: Recorded(r) for name, r in self.runners.items()}, timeout=60)
        finally:
            self.transcript = [transcript_entry(result) for result in results]
        return outcomes, self.transcript

    def sh(self, host: str, cmd: str) -> str:
        result = self.runners[host].run(cmd, 30)
        assert result.ok, result
        return result.stdout


def transcript_entry(result) -> dict:
    _plan, host, *step, phase = result.label.split(":")
    return {"host": host, "step": ":".join(step), "phase": phase, "cmd": result.command, "exit_code": result.exit_code}


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
    # The shared disks carry the serials the plan expects, so that check passes and its report is not sent.
    assert {(o.host, o.step): o.status.value for o in outcomes if o.status.value != "ran"} == {
        ("ctrl-a", "secondarycache=all ctrl-a_m0"): "skipped", ("ctrl-b", "secondarycache=all ctrl-b_m0"): "skipped",
        ("ctrl-a", "shared disks"): "skipped", ("ctrl-b", "shared disks"): "skipped"}
    for host, paper_commands in PAPER_COMMANDS.items():
        expected = [c for c in paper_commands if not c.startswith("zfs set secondarycache=all")]
        assert [c for c in commands(transcript, host) if c in paper_commands] == expected, host
    assert not any(e["phase"] in ("command", "verify") and e["exit_code"] for e in transcript)


def test_bst_plan_wire_lists_what_the_executor_sent_in_its_order(provisioned, plan):
    """`bst plan --wire` claims the executor's order: what a fresh host received is a subsequence of it."""
    from lab.wire import plan_strings

    lab, _, _ = provisioned
    listed = plan_strings(plan, FreeBSDStack().wire)
    for host, connection in lab.connections.items():
        remaining = iter(listed[host])
        missing = [cmd for cmd in connection.sent if not any(cmd == line for line in remaining)]
        assert connection.sent and missing == [], host


def test_every_string_reached_the_fake_through_csh_as_one_line(provisioned):
    lab, _, transcript = provisioned
    sent = [cmd for connection in lab.connections.values() for cmd in connection.sent]
    assert len(sent) >= len(transcript) and all("\n" not in cmd for cmd in sent)
    assert all(re.fullmatch(r"printf %s [A-Za-z0-9+/=]+ \| b64decode -r \| /bin/sh", cmd) for cmd in sent)


def test_both_controllers_share_one_hostid_and_import_each_others_pool_without_f(provisioned):
    lab, _, transcript = provisioned
    hostids = {host: lab.sh(host, "sysctl -n kern.hostid") for host in ("ctrl-a", "ctrl-b")}
    assert hostids["ctrl-a"] == hostids["ctrl-b"] != lab.sh("clnt-1", "sysctl -n kern.hostid")
    assert "zpool import -N ctrl-b_m0" in commands(transcript, "ctrl-a")


def test_without_the_shared_hostid_zfs_refuses_the_papers_import(tmp_path, paper, plan):
    """What the box does on its own: each VM its own hostid, so the peer's pool looks in use elsewhere."""
    lab = Lab(tmp_path, paper)
    own_hostids = {host: [s for s in steps if s.name != "hostid"] for host, steps in plan.items()}
    with pytest.raises(StepFailed) as failed:
        lab.apply(own_hostids)
    assert re.fullmatch(
        r"ctrl-a: step 'import ctrl-b_m0' failed: command `zpool import -N ctrl-b_m0` exited 1: cannot import "
        r"'ctrl-b_m0': pool may be in use from other system, it was last accessed by ctrl-b \(hostid: 0x[0-9a-f]{8}\) "
        r"on \w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4} use '-f' to import anyway", str(failed.value))


def test_sysctl_conf_keeps_the_boxs_lines(provisioned, plan):
    lab, _, _ = provisioned
    text = (lab.connections["ctrl-a"].root / "etc" / "sysctl.conf").read_text()
    assert text == BOX_SYSCTL_CONF + "kern.iscsi.fail_on_disconnection=1\n"


def test_a_shared_disk_with_another_serial_stops_before_zpool_create(tmp_path, paper, plan):
    lab = Lab(tmp_path, paper)
    disks = {"ada2": ["beast-d10", 256 << 20], "ada3": ["beast-d01", 256 << 20], "da0": ["", 128 << 20],
             "da1": ["", 256 << 20]}  # VirtualBox's SAS disks report no serial: their size must match
    lab.edit(lambda w: w["hosts"]["ctrl-b"]["disks"].update(disks))
    with pytest.raises(StepFailed) as failed:
        lab.apply(plan)
    assert str(failed.value).startswith("ctrl-b: step 'shared disks' failed: command `bad=0; ")
    assert str(failed.value).endswith(
        "exited 1: ada2 is not the shared SATA disk d01 (serial beast-d01, 256 MiB): its serial is beast-d10 "
        "ada3 is not the shared SATA disk d10 (serial beast-d10, 256 MiB): its serial is beast-d01 "
        "da1 is not the shared SAS disk f01 (serial beast-f01, 128 MiB): its serial is (null)")
    assert not any(e["host"] == "ctrl-b" and e["step"].startswith("zpool create") for e in lab.transcript)


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
    assert (lab.connections["ctrl-a"].root / "etc" / "ctl.conf").read_text().count("target iqn.") == 2




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
    assert "[ $i -ge 60 ] && break" in step.verify, "the verify's wait must be bounded"
    with pytest.raises(StepFailed) as failed:
        lab.apply(plan)
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
    assert os.path.exists(lab.connections["ctrl-a"].root / "var" / "db" / "beast-recovery-imported")


def controller_rebooted(world: dict, topo: Topology, failed: str) -> None:
    """What the peer and the client see once ``failed`` crashed and booted again: its sessions to them are
    gone with their disks (fail_on_disconnection), so each multipath lost that path; the rebooted host kept
    its pools imported (zpool.cache) and started ctld before they were."""
    world["hosts"][failed].update({"boottime": int(time.time()) - 120, "sessions": [], "multipaths": {},
                                   "ctl_luns": []})
    portals = {str(address) for address in topo.hosts[failed].addresses.values()}
    for name in [topo.peer(failed).name, topo.client.host]:
        host = world["hosts"][name]
        gone = {d for session in host["sessions"] if session["portal"] in portals for d in session["devices"]}
        host["sessions"] = [session for session in host["sessions"] if session["portal"] not in portals]
        for components in host["multipaths"].values():
            components[:] = [c for c in components if c[0] not in gone]


@pytest.mark.parametrize("failed", ["ctrl-a", "ctrl-b"])
def test_the_whole_recovery_of_each_controller_passes(tmp_path, paper, plan, monkeypatch, failed):
    """Export, reboot, import (shared hostid: no -f), scrub, clear, ctld, arbitrator, public target and the
    client's paths back, for either failed controller, every string through csh."""
    monkeypatch.setattr(executor, "REBOOT_POLL_INTERVAL_S", 0.0)
    lab = Lab(tmp_path, paper)
    lab.apply(plan)
    lab.edit(lambda w: controller_rebooted(w, paper, failed))
    outcomes, transcript = lab.apply(FreeBSDStack().recovery(paper, failed))
    ran = {(o.host, o.step) for o in outcomes if o.status.value == "ran"}
    survivor = paper.peer(failed).name
    assert {o.status.value for o in outcomes} <= {"ran", "skipped"}
    assert {(failed, "import pools"), (failed, "ctld restart"), (failed, "ctl.conf public target"),
            (survivor, f"session {paper.hosts[failed].address('private')}"),
            (survivor, f"path back {paper.pool_of(failed).arbitrator}"),
            ("clnt-1", f"session {paper.hosts[failed].address('public')}"),
            *(("clnt-1", f"path back {m.name}") for m in paper.client.multipaths)} <= ran
    assert [c for c in commands(transcript, failed) if c.startswith("zpool import")] == [
        "zpool import -N ctrl-a_m0", "zpool import -N ctrl-b_m0"]
    for multipath in paper.client.multipaths:
        states = sorted(state for _, state in json.loads((lab.world / "world.json").read_text())
                        ["hosts"]["clnt-1"]["multipaths"][multipath.name])
        assert states == ["ACTIVE", "PASSIVE"], multipath.name


def test_drill_queries_run_under_csh(provisioned, paper):
    """The facts and commands a drill sends to a FreeBSD host, through the same wire, read by the facts' parsers."""
    lab, _, _ = provisioned
    stack = FreeBSDStack()
    for host, cmd in [("ctrl-a", stack.pool_status_command("ctrl-a_m0")), ("ctrl-b", stack.scrub_command("ctrl-b_m0")),
                      ("ctrl-a", stack.sessions_command()), ("ctrl-a", stack.multipath_status_command("CTRL_B_BACK"))]:
        result = lab.runners[host].run(cmd, 30)
        assert result.ok and (result.stdout or cmd.startswith("zpool scrub")), (cmd, result)

    def read(host: str, fact):
        result = lab.runners[host].run(fact.command, fact.timeout_s)
        assert result.ok, (fact.name, result)
        return fact.read(result.stdout, result.stderr)

    assert [pool.name for pool in read("ctrl-a", stack.pool_status_fact())] == ["ctrl-a_m0", "ctrl-b_m0"]
    paths = read("clnt-1", stack.client_paths_fact(paper))
    assert set(paths) == {m.name for m in paper.client.multipaths}
    portals = read("clnt-1", stack.client_portals_fact())
    assert set(portals) == {disk for states in paths.values() for disk in states}
    assert set(portals.values()) == {host.address("public") for host in paper.controllers}


def test_corrupt_disk_sets_geom_debugflags_for_the_write_and_puts_it_back(provisioned, paper):
    lab, _, _ = provisioned
    plain_dd = "dd if=/dev/random of=/dev/ada1 bs=1m oseek=4 count=96 conv=notrunc"
    refused = lab.runners["ctrl-a"].run(plain_dd, 30)
    assert (refused.exit_code, refused.stderr) == (1, "dd: /dev/ada1: Operation not permitted\n")
    assert lab.runners["ctrl-a"].run(FreeBSDStack().corrupt_disk_command(paper, "d00"), 30).ok
    assert lab.sh("ctrl-a", "sysctl -n kern.geom.debugflags") == "0\n"
    assert json.loads((lab.world / "world.json").read_text())["pools"]["ctrl-a_m0"]["damaged"]
