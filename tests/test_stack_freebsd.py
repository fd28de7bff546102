"""The FreeBSD stack against the paper: its commands, its files, its order, and its barriers.

Expected plans live in tests/fixtures/plans/freebsd/<case>/ and were written by hand from the paper (and,
for the second case, from its topology.toml), never dumped from the code. They hold what each step does
(name, stage, files, commands); the shell checks are tested by running them against recorded tool output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.plan import Plan, plan_to_json, stages
from lab.stacks import freebsd as freebsd_module
from lab.stacks import get_stack
from lab.stacks.freebsd import (
    FreeBSDStack,
    multipath_healthy,
    session_connected,
    session_exists,
    vdev_in,
)
from lab.topology import Topology, load_topology

FIXTURES = Path(__file__).parent / "fixtures"
PLANS = FIXTURES / "plans" / "freebsd"
TOOL_OUTPUT = FIXTURES / "parsers"
CASES = {"paper": None, "three-disks": PLANS / "three-disks" / "topology.toml"}

# Every command the paper prints, per host, in the paper's order (verbatim, PDF line breaks joined).
# Fixes: the paper's prose calls the pool ctrl_a_m0 once; its commands say ctrl-a_m0, as here.
PAPER_COMMANDS = {
    "ctrl-a": [
        "zpool create -m none ctrl-a_m0 /dev/ada1 /dev/ada2",
        "zfs create -V 120M ctrl-a_m0/v0",
        "zpool add ctrl-a_m0 log /dev/da0",
        "zfs set sync=always ctrl-a_m0",
        "zpool add ctrl-a_m0 cache /dev/da1",
        "zfs set primarycache=none ctrl-a_m0",
        "zfs set secondarycache=all ctrl-a_m0",
        "zpool import -N ctrl-b_m0",
        "zpool set failmode=continue ctrl-a_m0",
        "zpool set failmode=continue ctrl-b_m0",
        "service ctld restart",
        "iscsictl -A -p 192.168.56.11 -t iqn.2016-01.local.sss.private:target0",
        "gmultipath create CTRL_B_BACK /dev/da4 /dev/zvol/ctrl-b_m0/v0",
        "killall -HUP ctld",
    ],
    "ctrl-b": [
        "zpool create -m none ctrl-b_m0 /dev/ada3 /dev/ada4",
        "zfs create -V 120M ctrl-b_m0/v0",
        "zpool add ctrl-b_m0 log /dev/da2",
        "zfs set sync=always ctrl-b_m0",
        "zpool add ctrl-b_m0 cache /dev/da3",
        "zfs set primarycache=none ctrl-b_m0",
        "zfs set secondarycache=all ctrl-b_m0",
        "zpool import -N ctrl-a_m0",
        "zpool set failmode=continue ctrl-a_m0",
        "zpool set failmode=continue ctrl-b_m0",
        "service ctld restart",
        "iscsictl -A -p 192.168.56.10 -t iqn.2016-01.local.sss.private:target0",
        "gmultipath create CTRL_A_BACK /dev/da4 /dev/zvol/ctrl-a_m0/v0",
        "killall -HUP ctld",
    ],
    "clnt-1": [
        "iscsictl -A -p 192.168.55.10 -t iqn.2016-01.local.sss.public:target0",
        "iscsictl -A -p 192.168.55.11 -t iqn.2016-01.local.sss.public:target0",
        "gmultipath create CTRL_A /dev/da0 /dev/da3",
        "gmultipath create CTRL_B /dev/da2 /dev/da1",
        "gstripe create ZDATA /dev/multipath/CTRL_A /dev/multipath/CTRL_B",
        "newfs /dev/stripe/ZDATA",
        "mount /dev/stripe/ZDATA /storage",
    ],
}

# "The recovery procedure" with ctrl-a failed: the commands after ctrl-a is booted again.
PAPER_RECOVERY_COMMANDS = {
    "ctrl-a": [
        "zpool export ctrl-a_m0",
        "zpool export ctrl-b_m0",
        "zpool import -N ctrl-a_m0",
        "zpool import -N ctrl-b_m0",
        "zpool scrub ctrl-a_m0",
        "zpool scrub ctrl-b_m0",
        "zpool clear ctrl-a_m0",
        "zpool clear ctrl-b_m0",
    ],
    "ctrl-b": [
        "zpool scrub ctrl-a_m0",
        "zpool scrub ctrl-b_m0",
        "zpool clear ctrl-a_m0",
        "zpool clear ctrl-b_m0",
    ],
}

# rc.conf as the paper prints it (the management NIC is a virtio vtnet0, so the lab NICs keep em0/em1),
# ctrl-b's `vboxguest_enable="YES` given its closing quote, and ctrl-b's "# target"/"# initiator"
# comments written as ctrl-a's "# Targets"/"# Initiators". The client's lines are the paper's
# "essential lines" plus its hostname.
_RC_TAIL = [
    'sshd_enable="YES"',
    '# Set dumpdev to "AUTO" to enable crash dumps, "NO" to disable',
    'dumpdev="AUTO"',
    "# VirtualBox guest additions",
    'vboxguest_enable="YES"',
    'vboxservice_enable="YES"',
    "# iSCSI",
]
PAPER_RC_CONF = {
    "ctrl-a": [
        'hostname="ctrl-a"',
        'ifconfig_em0="inet 192.168.56.10 netmask 255.255.255.0" # Inter-controller LAN',
        'ifconfig_em1="inet 192.168.55.10 netmask 255.255.255.0" # Public network',
        *_RC_TAIL,
        'ctld_enable="YES" # Targets',
        'iscsid_enable="YES" # Initiators',
    ],
    "ctrl-b": [
        'hostname="ctrl-b"',
        'ifconfig_em0="inet 192.168.56.11 netmask 255.255.255.0" # Inter-controller LAN',
        'ifconfig_em1="inet 192.168.55.11 netmask 255.255.255.0" # Public network',
        *_RC_TAIL,
        'ctld_enable="YES" # Targets',
        'iscsid_enable="YES" # Initiators',
    ],
    "clnt-1": [
        'hostname="clnt-1"',
        'ifconfig_em0="inet 192.168.55.20 netmask 255.255.255.0" # Public network',
        *_RC_TAIL,
        'iscsid_enable="YES" # Initiators',
    ],
}
PAPER_SYSCTL_CONF = ["kern.iscsi.fail_on_disconnection=1"]


def _ctl_conf(private: str, public: str | None, own_pool: str, back: str | None) -> list[str]:
    """The paper's ctl.conf blocks, PDF line breaks joined (``discovery-auth-group no-authentication``)."""
    lines = ["portal-group pg0 {", "discovery-auth-group no-authentication", f"listen {private}", "}"]
    if public:
        lines += ["portal-group pg1 {", "discovery-auth-group no-authentication", f"listen {public}", "}"]
    lines += ["target iqn.2016-01.local.sss.private:target0 {", "auth-group no-authentication",
              "portal-group pg0", "lun 0 {", f"path /dev/zvol/{own_pool}/v0", "}", "}"]
    if back:
        lines += ["target iqn.2016-01.local.sss.public:target0 {", "auth-group no-authentication",
                  "portal-group pg1", "lun 0 {", f"path /dev/zvol/{own_pool}/v0", "}",
                  "lun 1 {", f"path /dev/multipath/{back}", "}", "}"]
    return lines


PAPER_CTL_CONF = {
    ("ctrl-a", "ctl.conf private target"): _ctl_conf("192.168.56.10", None, "ctrl-a_m0", None),
    ("ctrl-b", "ctl.conf private target"): _ctl_conf("192.168.56.11", None, "ctrl-b_m0", None),
    ("ctrl-a", "ctl.conf public target"):
        _ctl_conf("192.168.56.10", "192.168.55.10", "ctrl-a_m0", "CTRL_B_BACK"),
    ("ctrl-b", "ctl.conf public target"):
        _ctl_conf("192.168.56.11", "192.168.55.11", "ctrl-b_m0", "CTRL_A_BACK"),
}


@pytest.fixture(scope="module")
def stack() -> FreeBSDStack:
    return FreeBSDStack()


@pytest.fixture(scope="module")
def paper() -> Topology:
    return load_topology()


@pytest.fixture(scope="module")
def paper_plan(stack, paper) -> Plan:
    return stack.provision(paper)


def normalised(text: str) -> str:
    return " ".join(text.split())


def content_lines(content: str) -> list[str]:
    return [normalised(line) for line in content.splitlines() if line.strip()]


def load_expected(path: Path) -> dict:
    """The hand-written plan; file contents and here-document commands are stored as lists of lines."""
    data = json.loads(path.read_text())
    for steps in data.values():
        for step in steps:
            step["commands"] = ["\n".join(c) if isinstance(c, list) else c for c in step["commands"]]
            step["files"] = {
                name: "\n".join(content) + "\n" if isinstance(content, list) else content
                for name, content in step["files"].items()
            }
    return data


def what_steps_do(plan: Plan) -> dict:
    keys = ("name", "stage", "commands", "files")
    return {host: [{k: step[k] for k in keys} for step in steps]
            for host, steps in plan_to_json(plan).items()}


def commands_of(steps) -> list[str]:
    return [command for step in steps for command in step.commands]


def assert_in_order(wanted: list[str], actual: list[str]) -> None:
    position = 0
    for command in wanted:
        assert command in actual[position:], f"{command!r} missing, or out of the paper's order"
        position = actual.index(command, position) + 1


def step_named(steps, name: str):
    return next(step for step in steps if step.name == name)


@pytest.mark.parametrize("case", CASES)
def test_provision_plan_is_the_hand_written_one(stack, case):
    plan = stack.provision(load_topology(CASES[case]))
    assert what_steps_do(plan) == load_expected(PLANS / case / "expected.json")


def test_recovery_plan_is_the_hand_written_one(stack, paper, paper_plan):
    expected = load_expected(PLANS / "paper" / "recovery-ctrl-a.json")
    provisioned = step_named(paper_plan["ctrl-a"], "ctl.conf public target").files
    for step in expected["ctrl-a"]:
        if step["files"] == {"/etc/ctl.conf": "same as provisioning"}:
            step["files"] = dict(provisioned)
    assert what_steps_do(stack.recovery(paper, "ctrl-a")) == expected


@pytest.mark.parametrize("host", PAPER_COMMANDS)
def test_every_paper_command_is_planned_in_the_papers_order(paper_plan, host):
    assert_in_order(PAPER_COMMANDS[host], commands_of(paper_plan[host]))


@pytest.mark.parametrize("host", PAPER_RECOVERY_COMMANDS)
def test_every_paper_recovery_command_is_planned_in_the_papers_order(stack, paper, host):
    assert_in_order(PAPER_RECOVERY_COMMANDS[host], commands_of(stack.recovery(paper, "ctrl-a")[host]))


@pytest.mark.parametrize("host", PAPER_RC_CONF)
def test_rc_conf_and_sysctl_conf_hold_every_paper_line(paper_plan, host):
    rc = content_lines(step_named(paper_plan[host], "rc.conf").files["/etc/rc.conf.local"])
    assert rc == [normalised(line) for line in PAPER_RC_CONF[host]]
    merge = step_named(paper_plan[host], "sysctl.conf")
    assert [re.search(r"echo '([^']*)' >>", c).group(1) for c in merge.commands] == PAPER_SYSCTL_CONF
    assert merge.files == {} and all(f"grep -qxF '{line}' /etc/sysctl.conf" in merge.check
                                     for line in PAPER_SYSCTL_CONF)


def test_sysctl_conf_is_merged_keeping_the_boxs_lines(paper_plan, tmp_path):
    """The box's panic settings stay; a second merge changes nothing; an old value of ours is replaced."""
    conf = tmp_path / "sysctl.conf"
    conf.write_text("debug.debugger_on_panic=0\nkern.iscsi.fail_on_disconnection=0\nkern.panic_reboot_wait_time=0\n")
    merge = step_named(paper_plan["ctrl-a"], "sysctl.conf")
    for _ in range(2):
        for command in merge.commands:
            subprocess.run(["sh", "-c", command.replace("/etc/sysctl.conf", str(conf))], check=True)
    assert conf.read_text() == ("debug.debugger_on_panic=0\nkern.panic_reboot_wait_time=0\n"
                                "kern.iscsi.fail_on_disconnection=1\n")
    assert subprocess.run(["sh", "-c", merge.check.replace("/etc/sysctl.conf", str(conf))]).returncode == 0


def test_corrupt_disk_allows_writes_under_zfs_and_restores_the_flag(stack, paper):
    command = stack.corrupt_disk_command(paper, "d00")
    assert command.startswith(
        "old=$(sysctl -n kern.geom.debugflags); sysctl kern.geom.debugflags=0x10 >/dev/null && dd ")
    assert "of=/dev/ada1 " in command and "sysctl kern.geom.debugflags=$old" in command


def test_wire_strings_are_one_line_and_parse_under_csh(stack, paper):
    """`bst plan --stack freebsd --wire`: provisioning and each recovery, every string one line, tcsh -n quiet."""
    from lab.wire import plan_strings

    tcsh = shutil.which("tcsh")
    if tcsh is None:
        pytest.fail("tcsh is not installed (apt-get install tcsh): FreeBSD's csh is what these strings meet")
    plans = [stack.provision(paper), *(stack.recovery(paper, h.name) for h in paper.controllers)]
    strings = [line for plan in plans for lines in plan_strings(plan, stack.wire).values() for line in lines]
    assert len(strings) > 150 and all("\n" not in line for line in strings)
    for line in strings:
        parsed = subprocess.run([tcsh, "-f", "-n", "-c", line], capture_output=True, text=True)
        assert (parsed.returncode, parsed.stdout + parsed.stderr) == (0, ""), line


@pytest.mark.parametrize(("host", "step"), PAPER_CTL_CONF)
def test_ctl_conf_holds_every_paper_line_in_order(paper_plan, host, step):
    written = step_named(paper_plan[host], step)
    if "/etc/ctl.conf" in written.files:
        content = written.files["/etc/ctl.conf"]
    else:
        heredoc = written.commands[0]
        assert heredoc.startswith("cat > /etc/ctl.conf <<'EOF'\n") and heredoc.endswith("\nEOF")
        content = heredoc.split("\n", 1)[1].rsplit("\n", 1)[0]
    assert content_lines(content) == PAPER_CTL_CONF[(host, step)]


@pytest.mark.parametrize("case", CASES)
def test_every_step_that_runs_commands_is_idempotent_posix_sh(stack, case):
    topo = load_topology(CASES[case])
    plans = [stack.provision(topo), *(stack.recovery(topo, h.name) for h in topo.controllers)]
    for plan in plans:
        for steps in plan.values():
            for step in steps:
                assert not step.commands or step.check, step.name
                for script in (*step.commands, step.check, step.verify):
                    if script:
                        assert not re.search(r"\[\[|\bfunction\b|<<<|&>", script), script
                        syntax = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
                        assert syntax.returncode == 0, f"{step.name}: {syntax.stderr}"


def test_step_names_are_unique_per_host(stack, paper):
    for plan in (stack.provision(paper), stack.recovery(paper, "ctrl-b")):
        for host, steps in plan.items():
            names = [step.name for step in steps]
            assert len(names) == len(set(names)), host


def test_stages_are_the_papers_barriers(paper_plan):
    def stage_of(host: str, command_start: str) -> int:
        return next(s.stage for s in paper_plan[host] if any(c.startswith(command_start) for c in s.commands))

    def before(first: str, then: str, hosts=("ctrl-a", "ctrl-b"), then_hosts=("ctrl-a", "ctrl-b")) -> bool:
        return max(stage_of(h, first) for h in hosts) < min(stage_of(h, then) for h in then_hosts)

    assert before("zpool create", "zpool import")
    assert before("service ctld restart", "iscsictl -A")
    assert before("gmultipath create", "killall -HUP ctld")
    assert before("killall -HUP ctld", "iscsictl -A", then_hosts=("clnt-1",))
    assert stages(paper_plan) == list(range(7))
    for steps in paper_plan.values():
        assert [s.stage for s in steps] == sorted(s.stage for s in steps)


def test_recovery_reboots_between_export_and_import(stack, paper):
    steps = stack.recovery(paper, "ctrl-a")["ctrl-a"]
    names = [step.name for step in steps]
    assert names.index("export pools") < names.index("reboot") < names.index("import pools")
    reboot = step_named(steps, "reboot")
    assert reboot.commands == ("shutdown -r now",) and reboot.check
    for plan_steps in stack.recovery(paper, "ctrl-a").values():
        assert [s.stage for s in plan_steps] == sorted(s.stage for s in plan_steps)


def test_recovery_is_symmetric_for_the_other_controller(stack, paper):
    plan = stack.recovery(paper, "ctrl-b")
    assert list(plan) == ["ctrl-b", "ctrl-a", "clnt-1"]
    assert commands_of(plan["ctrl-b"])[:2] == ["zpool export ctrl-a_m0", "zpool export ctrl-b_m0"]
    assert "gmultipath create CTRL_A_BACK /dev/da4 /dev/zvol/ctrl-a_m0/v0" in commands_of(plan["ctrl-b"])
    assert any("gmultipath prefer CTRL_B_BACK" in c for c in commands_of(plan["ctrl-a"]))
    client = commands_of(plan["clnt-1"])
    assert any("gmultipath prefer CTRL_B " in c and "{print $4}" in c for c in client)
    assert any("gmultipath restore CTRL_A " in c and "{print $5}" in c and "prefer" not in c for c in client)


def test_recovery_of_a_non_controller_is_refused(stack, paper):
    with pytest.raises(LabError, match="clnt-1"):
        stack.recovery(paper, "clnt-1")


def test_query_commands(stack):
    assert stack.pool_status_command() == "zpool status -v"
    assert stack.pool_status_command("ctrl-a_m0") == "zpool status -v ctrl-a_m0"
    assert stack.pool_iostat_command() == "zpool iostat -v 5"
    assert stack.scrub_command("ctrl-a_m0") == "zpool scrub ctrl-a_m0"
    assert stack.multipath_status_command() == "gmultipath status"
    assert stack.multipath_status_command("CTRL_B") == "gmultipath status CTRL_B"
    assert stack.sessions_command() == "iscsictl -L"
    assert stack.mount_status_command("/storage") == "df -h /storage"


def test_registry_gives_this_stack():
    assert isinstance(get_stack("freebsd"), FreeBSDStack)


def test_recipe_names_no_host_pool_address_or_target():
    package = Path(freebsd_module.__file__).parent
    source = "".join(module.read_text() for module in sorted(package.glob("*.py")))
    assert "class FreeBSDStack" in source and "def rc_conf" in source
    for literal in ("ctrl-a", "ctrl-b", "clnt-1", "_m0", "CTRL_", "ZDATA", "192.168.", "iqn.", "/storage"):
        assert literal not in source, literal


# The checks are shell: run them against recorded tool output with the tool replaced by a stub.


@pytest.fixture
def tool_stub(tmp_path):
    """Run ``script`` with ``tool`` printing ``output``; returns the exit status."""
    if shutil.which("sh") is None:
        pytest.skip("no sh")

    def run(script: str, tool: str, output: str) -> int:
        (tmp_path / "out").write_text(output)
        stub = tmp_path / tool
        stub.write_text(f"#!/bin/sh\ncat {tmp_path / 'out'}\n")
        stub.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
        return subprocess.run(["sh", "-c", script], env=env).returncode

    return run


def test_session_checks_read_iscsictl(tool_stub):
    connected = (TOOL_OUTPUT / "iscsictl" / "handbook_connected.txt").read_text()
    refused = (TOOL_OUTPUT / "iscsictl" / "handbook_connection_refused.txt").read_text()
    iqn = "iqn.2012-06.com.example:target0"
    assert tool_stub(session_exists(iqn, "10.10.10.10"), "iscsictl", connected) == 0
    assert tool_stub(session_exists(iqn, "10.10.10.99"), "iscsictl", connected) != 0
    assert tool_stub(session_connected(iqn, "10.10.10.10", ("da0",)), "iscsictl", connected) == 0
    assert tool_stub(session_connected(iqn, "10.10.10.10", ("da4",)), "iscsictl", connected) != 0
    assert tool_stub(session_connected(iqn, "10.10.10.10", luns=1), "iscsictl", connected) == 0
    assert tool_stub(session_connected(iqn, "10.10.10.10", luns=2), "iscsictl", connected) != 0
    assert tool_stub(session_exists(iqn, "10.10.10.11"), "iscsictl", refused) == 0
    assert tool_stub(session_connected(iqn, "10.10.10.11", luns=1), "iscsictl", refused) != 0


def test_multipath_check_reads_gmultipath_status(tool_stub):
    optimal = ("          Name    Status  Components\n"
               "multipath/CTRL_B_BACK  OPTIMAL  da4 (ACTIVE)\n"
               "                        zvol/ctrl-b_m0/v0 (PASSIVE)\n")
    degraded = ("          Name    Status  Components\n"
                "multipath/CTRL_B_BACK  DEGRADED  zvol/ctrl-b_m0/v0 (ACTIVE)\n")
    assert tool_stub(multipath_healthy("CTRL_B_BACK"), "gmultipath", optimal) == 0
    assert tool_stub(multipath_healthy("CTRL_B_BACK"), "gmultipath", degraded) != 0


def test_log_and_cache_checks_read_zpool_status(tool_stub):
    status = (TOOL_OUTPUT / "zpool_status" / "paper_both_pools_with_logs_cache.txt").read_text()
    assert tool_stub(vdev_in("ctrl-a_m0", "logs", "da0"), "zpool", status) == 0
    assert tool_stub(vdev_in("ctrl-a_m0", "cache", "da1"), "zpool", status) == 0
    assert tool_stub(vdev_in("ctrl-a_m0", "logs", "da1"), "zpool", status) != 0
    assert tool_stub(vdev_in("ctrl-a_m0", "cache", "da0"), "zpool", status) != 0


def test_reboot_step_is_marked_for_the_executor():
    steps = FreeBSDStack().recovery(load_topology(), "ctrl-a")["ctrl-a"]
    assert [s.name for s in steps if s.reboot] == ["reboot"]


def test_drill_commands_reach_sh_intact_through_csh(stack, paper, tmp_path):
    """Every FreeBSD query and fault a scenario sends: one line, tcsh -n quiet, decoded back to the same sh."""
    from lab.wire import through_csh

    tcsh = shutil.which("tcsh")
    if tcsh is None:
        pytest.fail("tcsh is not installed (apt-get install tcsh): FreeBSD's csh is what these strings meet")
    multipath = paper.client.multipaths[0].name
    drill = [stack.md5_fact("/storage/file").command, stack.client_paths_fact(paper).command,
             stack.sessions_command(), stack.client_portals_fact().command, stack.pool_status_fact().command,
             stack.multipath_status_command(multipath),
             *stack.remount_commands(paper), stack.corrupt_disk_command(paper, "d00"),
             stack.fail_client_path_command(paper, multipath), stack.pool_status_command("ctrl-a_m0"),
             stack.scrub_command("ctrl-a_m0"), stack.force_import_command(paper, "ctrl-a_m0"),
             stack.make_random_file_command("/storage/file", 96), stack.mount_status_command("/storage"),
             stack.probe_command(paper, "/tmp/probe.log", 0.5), stack.pool_iostat_command()]
    decoder = tmp_path / "b64decode"
    decoder.write_text('#!/bin/sh\n[ "$1" = -r ] && exec base64 -d\n')
    decoder.chmod(0o755)
    for cmd in drill:
        line = stack.wire(cmd)
        assert line == through_csh(cmd) and "\n" not in line
        parsed = subprocess.run([tcsh, "-f", "-n", "-c", line], capture_output=True, text=True)
        assert (parsed.returncode, parsed.stdout + parsed.stderr) == (0, ""), cmd
        echoed = subprocess.run([tcsh, "-f", "-c", line.replace("| /bin/sh", "| cat")], capture_output=True,
                                text=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
        assert echoed.stdout == f"{{ {cmd}\n}} </dev/null\n", cmd


@pytest.mark.parametrize("recovery", [None, "ctrl-a", "ctrl-b"])
def test_bst_plan_wire_prints_the_exact_strings(stack, paper, recovery):
    from typer.testing import CliRunner

    from lab.cli import app
    from lab.wire import plan_strings

    args = ["plan", "--stack", "freebsd", "--wire", "--json", *(["--recovery", recovery] if recovery else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    plan = stack.recovery(paper, recovery) if recovery else stack.provision(paper)
    assert json.loads(result.stdout) == plan_strings(plan, stack.wire)
