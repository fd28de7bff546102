"""What scenarios ask of each stack reads the stack's own tools' real output."""


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
    paths = get_stack("freebsd").parse_client_paths(topo, GMULTIPATH_AFTER_FAULT)
    assert paths == {"CTRL_A": {"da3": "active", "da0": "failed"}, "CTRL_B": {"da2": "active", "da1": "standby"}}


def test_linux_paths_from_dmsetup_status():
    topo = load_topology()
    paths = get_stack("linux").parse_client_paths(topo, DMSETUP_AFTER_FAULT)
    assert paths["CTRL_A"] == {"sdb": "failed", "sdd": "active"}
    assert paths["CTRL_B"] == {"sdc": "active", "sde": "standby"}


def test_both_stacks_answer_every_scenario_query():
    topo = load_topology()
    for name in ("freebsd", "linux"):
        stack = get_stack(name)
        assert stack.md5_command("/storage/x")
        assert stack.client_paths_command(topo)
        unmount, mount = stack.remount_commands(topo)
        assert unmount.endswith("|| umount /storage")
        assert mount.startswith("mount /dev/") and mount.endswith(" /storage")
        probe = stack.probe_command(topo, "/root/p.log", 0.5)
        assert "/storage/" in probe and ">> /root/p.log" in probe

