"""arbitrator = "takeover", offline: multihost pools imported by their owner only, an arbitrator map with
the iSCSI path alone, the survivor's takeover after fencing, and the hand-back on recovery.

tests/fixtures/plans/linux/takeover*.json hold the expected plans (read through by hand when written); the
other tests assert the properties that matter directly, so a regenerated fixture alone cannot hide a
regression. The sequence was run on real VMs (see the module docstring of lab.stacks.linux).
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.plan import Plan, plan_to_json, stages
from lab.stacks import get_stack
from lab.stacks.base import TakebackStage
from lab.stacks.linux import (
    HELPER_DIR,
    HELPERS,
    MULTIHOST_TUNABLES,
    SCRIPTS,
    TAKEOVER_HELPERS,
    LinuxStack,
    Stage,
    lun_path,
)
from lab.topology import Topology, default_topology_path, load_topology, topology_from_dict

PLANS = Path(__file__).parent / "fixtures" / "plans" / "linux"
PRIVATE = "iqn.2016-01.local.sss.private:target0"


def takeover_topology() -> Topology:
    data = tomllib.loads(default_topology_path().read_text())
    data["lab"]["arbitrator"] = "takeover"
    return topology_from_dict(data, source="takeover.toml")


@pytest.fixture(scope="module")
def stack() -> LinuxStack:
    return LinuxStack()


@pytest.fixture(scope="module")
def topo() -> Topology:
    return takeover_topology()


@pytest.fixture(scope="module")
def plan(stack, topo) -> Plan:
    return stack.provision(topo)


def commands(plan: Plan, host: str) -> list[str]:
    return [cmd for step in plan[host] for cmd in step.commands]


def names(plan: Plan, host: str) -> list[str]:
    return [step.name for step in plan[host]]


def step_named(plan: Plan, host: str, name: str):
    return next(step for step in plan[host] if step.name == name)


@pytest.mark.parametrize(("fixture", "make"), [
    ("takeover.json", lambda s, t: s.provision(t)),
    ("takeover-takeover-ctrl-a.json", lambda s, t: s.takeover(t, "ctrl-a")),
    ("takeover-recovery-ctrl-a.json", lambda s, t: s.recovery(t, "ctrl-a")),
])
def test_plans_are_the_expected_ones(stack, topo, fixture, make):
    assert plan_to_json(make(stack, topo)) == json.loads((PLANS / fixture).read_text())


def test_pools_are_multihost_and_imported_by_their_owner_only(plan, topo):
    for host in topo.controllers:
        own, peer_pool = topo.pool_of(host.name), topo.pool_of(topo.peer(host.name).name)
        cmds = commands(plan, host.name)
        create = next(c for c in cmds if c.startswith("zpool create"))
        assert create.startswith(f"zpool create -f -o multihost=on -m none {own.name} ")
        assert f"zpool set multihost=on {own.name}" in cmds
        assert not any("zpool import" in c for c in cmds)
        assert not any(peer_pool.name in c for c in cmds if c.startswith("zpool") or c.startswith("zfs"))
        assert f"import {peer_pool.name}" not in names(plan, host.name)


def test_multihost_tunables_are_set_now_and_at_module_load(plan, topo):
    for host in topo.controllers:
        step = step_named(plan, host.name, "multihost tunables")
        assert step.stage == Stage.BASE
        conf = step.files["/etc/modprobe.d/beast-multihost.conf"]
        for key, value in MULTIHOST_TUNABLES.items():
            assert f"{key}={value}" in conf.splitlines()[-1]
            assert f"echo {value} > /sys/module/zfs/parameters/{key}" in step.commands
            assert f"/sys/module/zfs/parameters/{key}" in step.check
    assert "multihost tunables" not in names(plan, "clnt-1")


def test_arbitrator_map_starts_with_the_iscsi_path_alone(plan, topo):
    for host in topo.controllers:
        peer = topo.peer(host.name)
        arbitrator = topo.pool_of(peer.name).arbitrator
        iscsi = lun_path(peer.address("private"), PRIVATE, 0)
        step = step_named(plan, host.name, f"multipath {arbitrator}")
        assert step.stage == Stage.ARBITRATOR
        assert step.commands == (f"beast-dm-arbitrator {arbitrator} {iscsi}",)
        assert step.check == step.verify == f"beast-dm-arbitrator-ok {arbitrator} {iscsi}"
        assert not any(c.startswith("beast-dm-multipath ") for c in commands(plan, host.name))
        public = next(c for c in commands(plan, host.name) if f"dev=/dev/mapper/{arbitrator}" in c)
        assert "/backstores/block create" in public


def test_the_map_script_queues_in_bio_mode_and_reloads_under_noflush_without_waiting_for_udev():
    script = (SCRIPTS / "beast-dm-arbitrator").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert 'features="3 queue_if_no_path queue_mode bio"' in code
    assert "dmsetup --noudevsync suspend --noflush" in code
    assert (code.index("dmsetup --noudevsync suspend --noflush") < code.index("dmsetup --noudevsync load")
            < code.rindex("dmsetup --noudevsync resume"))
    assert 'switch_group "$groups"' in code
    assert "queue_if_no_path" in (SCRIPTS / "beast-dm-arbitrator-ok").read_text()


@pytest.mark.parametrize("name", TAKEOVER_HELPERS)
def test_takeover_helpers_are_valid_sh(name):
    assert subprocess.run(["sh", "-n", str(SCRIPTS / name)]).returncode == 0


def test_takeover_helpers_are_written_in_takeover_mode_only(stack, plan):
    paper = stack.provision(load_topology())
    for host, steps in plan.items():
        assert set(steps[0].files) == {f"{HELPER_DIR}/{n}" for n in HELPERS + TAKEOVER_HELPERS}, host
        assert set(paper[host][0].files) == {f"{HELPER_DIR}/{n}" for n in HELPERS}, host


def test_the_cross_import_stage_only_reads_the_peer_partitions(plan, topo):
    assert stages(plan) == [s.value for s in Stage]
    for host in topo.controllers:
        peer_pool = topo.pool_of(topo.peer(host.name).name)
        (step,) = [s for s in plan[host.name] if s.stage == Stage.CROSS_IMPORT]
        assert step.name == f"partitions of {peer_pool.name}"
        assert all(f"/dev/disk/by-id/beast-{d}-part1" in step.check for d in peer_pool.disks)
        assert f"blockdev --rereadpt {' '.join(f'/dev/disk/by-id/beast-{d}' for d in peer_pool.disks)}" in (
            step.commands[0])


def test_takeover_imports_forced_waits_for_the_zvol_then_adds_it_to_the_map(stack, topo):
    plan = stack.takeover(topo, "ctrl-a")
    assert list(plan) == ["ctrl-b"]
    steps = plan["ctrl-b"]
    assert [s.name for s in steps] == ["import ctrl-a_m0 -f", "volume ctrl-a_m0/v0",
                                       "multipath CTRL_A_BACK + /dev/zvol/ctrl-a_m0/v0"]
    imp = steps[0]
    parts = " ".join(f"-d /dev/disk/by-id/beast-{d}-part1" for d in ("d00", "d01", "f00", "f01"))
    assert imp.commands[-1] == f"zpool import -f -N {parts} ctrl-a_m0"
    assert "-d /dev/disk/by-id " not in " ".join(imp.commands)  # its scan would read the queueing map
    assert " || blockdev --rereadpt " in imp.commands[0]
    assert all(f"beast-{d}" in imp.commands[0] for d in ("d00", "d01", "f00", "f01"))
    assert not any(f"beast-{d}" in imp.commands[0] for d in ("d10", "d11", "f10", "f11"))
    assert imp.check == "zpool list -H -o name ctrl-a_m0 >/dev/null 2>&1"
    assert "multihost" in imp.verify and "ONLINE" in imp.verify
    iscsi = lun_path("192.168.56.10", PRIVATE, 0)
    assert steps[2].commands == (f"beast-dm-arbitrator CTRL_A_BACK {iscsi} /dev/zvol/ctrl-a_m0/v0",)
    assert steps[2].check == f"beast-dm-arbitrator-ok CTRL_A_BACK {iscsi} /dev/zvol/ctrl-a_m0/v0"
    for step in steps:
        assert step.check and step.verify and step.stage == 0
    assert all("power" not in c and "poweroff" not in c for s in steps for c in s.commands)  # fencing is the caller's


def test_takeover_of_ctrl_b_mirrors_it(stack, topo):
    steps = stack.takeover(topo, "ctrl-b")["ctrl-a"]
    assert steps[0].commands[-1].startswith("zpool import -f -N -d /dev/disk/by-id/beast-d10-part1 ")
    assert steps[0].commands[-1].endswith(" ctrl-b_m0")
    assert steps[2].commands == (
        f"beast-dm-arbitrator CTRL_B_BACK {lun_path('192.168.56.11', PRIVATE, 0)} /dev/zvol/ctrl-b_m0/v0",)


def test_takeover_in_paper_mode_is_an_empty_plan(stack):
    assert stack.takeover(load_topology(), "ctrl-a") == {}
    assert get_stack("freebsd").takeover(load_topology(), "ctrl-b") == {}


def test_takeover_of_a_non_controller_is_refused(stack, topo):
    with pytest.raises(LabError, match="'clnt-1' is not a controller; take over from one of ctrl-a, ctrl-b"):
        stack.takeover(topo, "clnt-1")


def test_recovery_hands_the_pool_back_before_the_owner_imports_it(stack, topo):
    plan = stack.recovery(topo, "ctrl-a")
    assert stages(plan) == [s.value for s in TakebackStage]
    release = step_named(plan, "ctrl-b", "hand back ctrl-a_m0")
    assert release.stage == TakebackStage.RELEASE == 0
    text = " ; ".join(release.commands)
    iscsi = lun_path("192.168.56.10", PRIVATE, 0)
    assert text.index(f"beast-dm-arbitrator CTRL_A_BACK {iscsi};") < text.index("zpool export ctrl-a_m0")
    assert release.check == release.verify == "! zpool list -H -o name ctrl-a_m0 >/dev/null 2>&1"
    own = step_named(plan, "ctrl-a", "import ctrl-a_m0")
    assert own.stage == TakebackStage.IMPORT > release.stage
    assert own.commands[-1].startswith("zpool import -N -d /dev/disk/by-id/beast-d00-part1 ")
    every = [c for steps in plan.values() for s in steps for c in s.commands]
    assert not any(re.search(r"zpool import (.* )?-f( |$)", c) for c in every)
    assert not any("zpool import" in c and "ctrl-b_m0" in c for c in every)
    assert "reboot" not in names(plan, "ctrl-a")  # the takeover mode needs no second reboot


def test_no_stage_has_a_pool_imported_on_two_hosts(stack, topo):
    """Walk the recovery stage by stage: which host may hold ctrl-a_m0 after each stage."""
    plan = stack.recovery(topo, "ctrl-a")
    holders = {"ctrl-b"}  # after the takeover
    for stage in stages(plan):
        for host, steps in plan.items():
            for step in (s for s in steps if s.stage == stage):
                text = " ; ".join(step.commands)
                if "zpool export ctrl-a_m0" in text:
                    holders.discard(host)
                if "zpool import" in text and "ctrl-a_m0" in text:
                    holders.add(host)
                assert len(holders) <= 1, (stage, host, step.name)
    assert holders == {"ctrl-a"}


def test_recovery_restores_targets_arbitrators_client_and_scrubs_own_pools(stack, topo):
    plan = stack.recovery(topo, "ctrl-a")
    failed = names(plan, "ctrl-a")
    assert failed.index("import ctrl-a_m0") < failed.index("private target") < failed.index(
        "multipath CTRL_B_BACK") < failed.index("public target") < failed.index("scrub ctrl-a_m0")
    assert step_named(plan, "ctrl-a", "private target").stage == TakebackStage.PRIVATE_TARGET
    assert step_named(plan, "ctrl-a", "public target").stage == TakebackStage.PUBLIC_TARGET
    back = step_named(plan, "ctrl-b", "multipath CTRL_A_BACK")
    assert back.stage == TakebackStage.ARBITRATOR
    assert back.check == f"beast-dm-arbitrator-ok CTRL_A_BACK {lun_path('192.168.56.10', PRIVATE, 0)}"
    assert "login iqn.2016-01.local.sss.private:target0 192.168.56.10" in names(plan, "ctrl-b")
    assert {"multipath CTRL_A", "multipath CTRL_B", "mount /storage"} <= set(names(plan, "clnt-1"))
    assert {s.stage for s in plan["clnt-1"]} == {TakebackStage.CLIENT}
    for host, pool, other in (("ctrl-a", "ctrl-a_m0", "ctrl-b_m0"), ("ctrl-b", "ctrl-b_m0", "ctrl-a_m0")):
        assert step_named(plan, host, f"scrub {pool}").stage == TakebackStage.SCRUB
        assert step_named(plan, host, f"clear {pool}").stage == TakebackStage.CLEAR
        assert f"scrub {other}" not in names(plan, host)
    for host, steps in plan.items():
        assert all(s.check for s in steps if s.commands), host
        assert len(names(plan, host)) == len(set(names(plan, host))), host
        assert [s.stage for s in steps] == sorted(s.stage for s in steps), host


def test_no_kernel_device_names(stack, topo):
    for the_plan in (stack.provision(topo), stack.takeover(topo, "ctrl-a"), stack.recovery(topo, "ctrl-b")):
        assert not re.search(r"/dev/(sd[a-z]|zd\d|dm-\d)", json.dumps(plan_to_json(the_plan)))


def test_freebsd_refuses_the_takeover_mode(topo):
    freebsd = get_stack("freebsd")
    message = ('the freebsd stack cannot run arbitrator = "takeover": FreeBSD 10.3\'s ZFS has no multihost '
               "property")
    for call in (lambda: freebsd.provision(topo), lambda: freebsd.recovery(topo, "ctrl-a"),
                 lambda: freebsd.takeover(topo, "ctrl-a")):
        with pytest.raises(LabError) as err:
            call()
        assert str(err.value).startswith(message)
        assert 'set [lab] arbitrator = "paper" in takeover.toml' in str(err.value)
        assert "\n" not in str(err.value)


def test_a_stack_without_takeover_refuses_it_by_name(topo):
    from lab.stacks.base import Stack

    class Minimal(Stack):
        name = "minimal"

        def provision(self, topo):
            self.check_arbitrator(topo)
            return {}

        def recovery(self, topo, failed):
            return {}

    with pytest.raises(LabError, match='the minimal stack cannot run arbitrator = "takeover"; set \\[lab\\] '
                                       'arbitrator to "paper" in takeover.toml'):
        Minimal().takeover(topo, "ctrl-a")
    with pytest.raises(LabError, match="cannot run arbitrator"):
        Minimal().provision(topo)
