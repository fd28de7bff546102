"""What scenarios ask of each stack reads the stack's own tools' real output, through the facts the drill
runs (a command paired with its parser)."""

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.stacks import get_stack
from lab.topology import load_topology

GMULTIPATH_AFTER_FAULT = """\
              Name    Status  Components
 multipath/CTRL_A  DEGRADED  da3 (ACTIVE)
                              da0 (FAIL)
 multipath/CTRL_B   OPTIMAL  da2 (ACTIVE)
                              da1 (PASSIVE)
"""

DMSETUP_AFTER_FAULT = """\
CTRL_A: 0 245760 multipath 2 0 0 0 2 2 E 0 1 2 8:16 F 1 0 1 A 0 1 2 8:48 A 0 0 1
CTRL_B: 0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:32 A 0 0 1 E 0 1 2 8:64 A 0 0 1
--
8:16 sdb
8:32 sdc
8:48 sdd
8:64 sde
"""


def test_freebsd_paths_from_gmultipath_status():
    topo = load_topology()
    fact = get_stack("freebsd").client_paths_fact(topo)
    assert fact.command == "gmultipath status CTRL_A CTRL_B"
    paths = fact.read(GMULTIPATH_AFTER_FAULT)
    assert paths == {"CTRL_A": {"da3": "active", "da0": "failed"}, "CTRL_B": {"da2": "active", "da1": "standby"}}


def test_linux_paths_from_dmsetup_status():
    topo = load_topology()
    fact = get_stack("linux").client_paths_fact(topo)
    assert fact.command.startswith("for map in CTRL_A CTRL_B; do") and fact.saved_as == "paths"
    paths = fact.read(DMSETUP_AFTER_FAULT)
    assert paths["CTRL_A"] == {"sdb": "failed", "sdd": "active"}
    assert paths["CTRL_B"] == {"sdc": "active", "sde": "standby"}


def test_both_stacks_answer_every_scenario_query():
    topo = load_topology()
    for name in ("freebsd", "linux"):
        stack = get_stack(name)
        assert stack.md5_command("/storage/x")
        assert stack.client_paths_fact(topo).command and stack.client_portals_fact().command
        unmount, mount = stack.remount_commands(topo)
        assert unmount.startswith("! ") and " || " in unmount and "umount /storage" in unmount
        assert mount.startswith("mount /dev/") and mount.endswith(" /storage")
        probe = stack.probe_command(topo, "/root/p.log", 0.5)
        assert "/storage/" in probe and ">> /root/p.log" in probe
        assert probe.count(f"$({stack.clock_read_command()})") == 2  # the same clock as the drill's clock sync


FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def test_linux_traces_each_disk_to_its_session_portal():
    text = (FIXTURES / "iscsiadm" / "flatcar349_session_p3.txt").read_text()
    fact = get_stack("linux").client_portals_fact()
    assert fact.command == "iscsiadm -m session -P 3"
    portals = fact.read(text)
    assert portals["sdb"] == "10.1.53.160"


def test_freebsd_traces_each_disk_to_its_session_portal():
    text = (FIXTURES / "iscsictl" / "handbook_connected.txt").read_text()
    fact = get_stack("freebsd").client_portals_fact()
    assert fact.command == "iscsictl -L"
    assert fact.read(text) == {"da0": "10.10.10.10"}


def test_linux_md5_fact_reads_md5sum_run_here(tmp_path):
    """The command as the client runs it (GNU coreutils, as on Debian), read by the fact."""
    path = tmp_path / "copy of file"
    path.write_bytes(b"BeaST" * 1000)
    fact = get_stack("linux").md5_fact(str(path))
    done = subprocess.run(["sh", "-c", fact.command], capture_output=True, text=True, check=True)
    assert fact.read(done.stdout) == hashlib.md5(path.read_bytes()).hexdigest()


def test_freebsd_md5_fact_reads_md5_q():
    """md5 -q prints the digest and a newline (FreeBSD md5(1), as in the paper)."""
    fact = get_stack("freebsd").md5_fact("/storage/file")
    assert fact.command == "md5 -q /storage/file"
    assert fact.read("D41D8CD98F00B204E9800998ECF8427E\n") == "d41d8cd98f00b204e9800998ecf8427e"


@pytest.mark.parametrize("output", ["", "md5sum: /storage/file: No such file or directory\n",
                                    "d41d8cd98f00b204e9800998ecf8427e  /storage/file\n", "d41d8cd98f00b204"])
def test_md5_fact_refuses_anything_but_one_digest(output):
    with pytest.raises(ParseError, match="md5"):
        get_stack("linux").md5_fact("/storage/file").read(output)


GMULTIPATH_LIST = """\
Geom name: CTRL_A
Type: MANUAL
Mode: Active/Passive
Providers:
1. Name: multipath/CTRL_A
Consumers:
1. Name: da0
   State: ACTIVE
2. Name: da3
   State: PASSIVE
"""

DMSETUP_TABLE = "0 245760 multipath 2 queue_mode bio 0 2 1 round-robin 0 1 1 8:0 1 round-robin 0 1 1 8:48 1\n"


def _run_with_tool(command: str, tool: str, output: str) -> str:
    """Run a stack's shell command here, with the guest tool replaced by a function printing ``output``
    and every other command echoed instead of run."""
    script = (f"{tool}() {{ if [ \"$1\" = list ] || [ \"$1\" = table ]; then printf '%s' {shlex.quote(output)}; "
              f"else echo {tool} \"$@\"; fi; }}\n{command}\n")
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_freebsd_fails_the_passive_path_through_the_peer():
    command = get_stack("freebsd").fail_client_path_command(load_topology(), "CTRL_A")
    assert _run_with_tool(command, "gmultipath", GMULTIPATH_LIST) == "gmultipath fail CTRL_A da3"


def test_linux_sets_the_last_paths_disk_offline_so_multipathd_cannot_reinstate_it(tmp_path):
    state = tmp_path / "8:48" / "device" / "state"
    state.parent.mkdir(parents=True)
    state.write_text("running\n")
    command = get_stack("linux").fail_client_path_command(load_topology(), "CTRL_A")
    assert "/sys/dev/block/$dev/device/state" in command
    command = command.replace("/sys/dev/block", str(tmp_path))
    assert _run_with_tool(command, "dmsetup", DMSETUP_TABLE) == "dmsetup message CTRL_A 0 fail_path 8:48"
    assert state.read_text() == "offline\n"


def test_a_naive_forced_import_names_the_pools_own_disks_on_linux():
    topo = load_topology()
    command = get_stack("linux").force_import_command(topo, "ctrl-a_m0")
    assert command.startswith("zpool import -f -N -d /dev/disk/by-id/") and command.endswith(" ctrl-a_m0")
    assert "by-id " not in command
    assert get_stack("freebsd").force_import_command(topo, "ctrl-a_m0") == "zpool import -f -N ctrl-a_m0"
    assert get_stack("freebsd").force_import_command(topo, "a b") == "zpool import -f -N 'a b'"
