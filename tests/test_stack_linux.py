"""The Linux stack's plans, offline: the paper's architecture from the topology, idempotent, no sdX names.

tests/fixtures/plans/linux/paper.json and paper-recovery-ctrl-a.json hold the expected plans (read through
by hand against the paper when written); the other tests assert the properties that matter directly, so
a regenerated fixture alone cannot hide a regression.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.plan import Plan, plan_to_json, stages
from lab.stacks import get_stack
from lab.stacks.linux import (
    HELPER_DIR,
    HELPERS,
    ISCSI_FAST_FAIL,
    SCRIPTS,
    LinuxStack,
    RecoveryStage,
    Stage,
    lun_path,
)
from lab.topology import Topology, default_topology_path, load_topology, topology_from_dict

PLANS = Path(__file__).parent / "fixtures" / "plans" / "linux"


@pytest.fixture(scope="module")
def stack() -> LinuxStack:
    return LinuxStack()


@pytest.fixture(scope="module")
def paper() -> Topology:
    return load_topology()


@pytest.fixture(scope="module")
def plan(stack, paper) -> Plan:
    return stack.provision(paper)


def all_text(plan: Plan) -> str:
    return json.dumps(plan_to_json(plan))


def commands(plan: Plan, host: str) -> list[str]:
    return [cmd for step in plan[host] for cmd in step.commands]


def step_named(plan: Plan, host: str, name: str):
    return next(step for step in plan[host] if step.name == name)


def test_provision_plan_is_the_expected_one(plan):
    expected = json.loads((PLANS / "paper.json").read_text())
    assert plan_to_json(plan) == expected


def test_recovery_plan_is_the_expected_one(stack, paper):
    expected = json.loads((PLANS / "paper-recovery-ctrl-a.json").read_text())
    assert plan_to_json(stack.recovery(paper, "ctrl-a")) == expected


def test_registry_gives_this_stack():
    assert isinstance(get_stack("linux"), LinuxStack)


def test_stages_are_the_papers_barriers(plan):
    assert stages(plan) == [s.value for s in Stage]
    for host, steps in plan.items():
        assert [s.stage for s in steps] == sorted(s.stage for s in steps), host
    for controller in ("ctrl-a", "ctrl-b"):
        stage_of = {step.name: step.stage for step in plan[controller]}
        assert stage_of["create " + ("ctrl-a_m0" if controller == "ctrl-a" else "ctrl-b_m0")] == Stage.POOLS
        assert stage_of["private target"] == Stage.PRIVATE_TARGET
        assert stage_of["public target"] == Stage.PUBLIC_TARGET
    assert step_named(plan, "ctrl-a", "import ctrl-b_m0").stage == Stage.CROSS_IMPORT
    assert step_named(plan, "ctrl-a", "multipath CTRL_B_BACK").stage == Stage.ARBITRATOR
    assert {s.stage for s in plan["clnt-1"] if s.commands and s.stage} == {Stage.CLIENT}


def test_every_step_with_commands_has_a_check_and_names_are_unique(stack, paper, plan):
    for the_plan in (plan, stack.recovery(paper, "ctrl-a"), stack.recovery(paper, "ctrl-b")):
        for host, steps in the_plan.items():
            assert all(step.check for step in steps if step.commands), host
            names = [step.name for step in steps]
            assert len(names) == len(set(names)), host


def test_no_kernel_disk_names_anywhere(stack, paper, plan):
    for text in (all_text(plan), all_text(stack.recovery(paper, "ctrl-b"))):
        assert not re.search(r"/dev/(sd[a-z]|ada\d|da\d|vd[a-z]|zd\d|dm-\d)", text)


def test_pools_use_the_topologys_disks_by_serial(plan, paper):
    for pool in paper.pools.values():
        owner = commands(plan, pool.owner)
        data = " ".join(f"/dev/disk/by-id/beast-{d}" for d in pool.data)
        assert f"zpool create -f -m none {pool.name} {data}" in owner
        assert f"zfs create -V 120M {pool.name}/v0" in owner
        assert f"zpool add -f {pool.name} log /dev/disk/by-id/beast-{pool.log}" in owner
        assert f"zpool add -f {pool.name} cache /dev/disk/by-id/beast-{pool.cache}" in owner
        for prop, value in {"sync": "always", "primarycache": "none", "secondarycache": "all"}.items():
            assert f"zfs set {prop}={value} {pool.name}" in owner
    rule = step_named(plan, "ctrl-a", "disk names").files["/etc/udev/rules.d/61-beast-disks.rules"]
    assert "ID_SERIAL_SHORT" in rule and "QEMU" not in rule and "-part%n" in rule


def test_cross_import_is_dash_n_refusal_kept_then_forced(plan, paper):
    for host in paper.controllers:
        own, peer_pool = paper.pool_of(host.name), paper.pool_of(paper.peer(host.name).name)
        step = step_named(plan, host.name, f"import {peer_pool.name}")
        text = " ; ".join(step.commands)
        first_try = f"zpool import -N -d /dev/disk/by-id {peer_pool.name}"
        assert text.index("blockdev --rereadpt") < text.index(first_try)
        assert f"> /var/lib/beast/import-refusal-{peer_pool.name}.txt" in text
        assert f"zpool import -f -N -d /dev/disk/by-id {peer_pool.name}" in text
        assert all("-N" in cmd for cmd in step.commands if "zpool import" in cmd)
        assert "import -f" in step.verify
        rereadpt = next(cmd for cmd in step.commands if cmd.startswith("blockdev --rereadpt"))
        assert all(f"beast-{d} " in rereadpt + " " for d in peer_pool.disks)
        assert not any(f"beast-{d}" in rereadpt for d in own.disks)  # busy here: the ioctl would fail


def test_failmode_continue_on_both_pools_on_both_controllers(plan):
    for host in ("ctrl-a", "ctrl-b"):
        for pool in ("ctrl-a_m0", "ctrl-b_m0"):
            assert f"zpool set failmode=continue {pool}" in commands(plan, host)


def test_arbitrator_targets_and_maps(plan, paper):
    for host in paper.controllers:
        peer = paper.peer(host.name)
        own, peer_pool = paper.pool_of(host.name), paper.pool_of(peer.name)
        cmds = commands(plan, host.name)
        private = paper.iscsi.private_target
        assert f"targetcli /iscsi/{private}/tpg1/portals create {host.address('private')} 3260" in cmds
        assert f"targetcli /iscsi/{private}/tpg1/acls create iqn.2016-01.local.sss:{peer.name}" in cmds
        assert any(f"dev=/dev/zvol/{own.name}/v0" in c for c in cmds)
        assert any("portals delete 0.0.0.0 3260" in c for c in cmds)
        assert "targetcli saveconfig" in cmds
        login = next(c for c in cmds if c.endswith("--login"))
        assert f"-T {private} -p {peer.address('private')}:3260" in login
        for key, value in ISCSI_FAST_FAIL.items():
            assert f"-n {shlex.quote(key)} -v {value}" in " ".join(cmds)
        active = lun_path(peer.address("private"), private, 0)
        assert f"beast-dm-multipath {peer_pool.arbitrator} bio {active} /dev/zvol/{peer_pool.name}/v0" in cmds
        public = paper.iscsi.public_target
        assert f"targetcli /iscsi/{public}/tpg1/portals create {host.address('public')} 3260" in cmds
        assert f"targetcli /iscsi/{public}/tpg1/luns create /backstores/block/{peer_pool.arbitrator}" in cmds
        assert any(f"dev=/dev/mapper/{peer_pool.arbitrator}" in c for c in cmds)
        assert f"targetcli /iscsi/{public}/tpg1/acls create iqn.2016-01.local.sss:clnt-1" in cmds


def test_no_queue_if_no_path(plan):
    script = (SCRIPTS / "beast-dm-multipath").read_text()
    assert "queue_mode bio" in script
    assert not re.search(r"^[^#]*queue_if_no_path", script, re.M)
    for steps in plan.values():
        assert not any("queue_if_no_path" in cmd for step in steps for cmd in step.commands)


def test_same_volume_has_one_wwn_on_both_controllers(plan, paper):
    def wwn(host: str, dev: str) -> str:
        cmd = next(c for c in commands(plan, host) if f"dev={dev} " in c)
        return cmd.rsplit("wwn=", 1)[1]

    assert wwn("ctrl-a", "/dev/zvol/ctrl-a_m0/v0") == wwn("ctrl-b", "/dev/mapper/CTRL_A_BACK")
    assert wwn("ctrl-b", "/dev/zvol/ctrl-b_m0/v0") == wwn("ctrl-a", "/dev/mapper/CTRL_B_BACK")
    assert wwn("ctrl-a", "/dev/zvol/ctrl-a_m0/v0") != wwn("ctrl-b", "/dev/zvol/ctrl-b_m0/v0")


def test_client_multipaths_stripe_and_mount(plan, paper):
    cmds = commands(plan, "clnt-1")
    public = paper.iscsi.public_target
    a0 = lun_path("192.168.55.10", public, 0)
    b1 = lun_path("192.168.55.11", public, 1)
    b0 = lun_path("192.168.55.11", public, 0)
    a1 = lun_path("192.168.55.10", public, 1)
    assert step_named(plan, "clnt-1", "multipath CTRL_A").check.endswith(f" {a0} {b1}")
    assert step_named(plan, "clnt-1", "multipath CTRL_B").check.endswith(f" {b0} {a1}")
    assert not any(c.startswith("beast-dm-multipath ") for c in cmds)
    stripe = next(c for c in cmds if "mdadm --create" in c)
    assert "/dev/md/ZDATA" in stripe and "--level=0" in stripe and "--homehost=clnt-1" in stripe
    assert stripe.endswith("/dev/mapper/CTRL_A /dev/mapper/CTRL_B; fi")
    assert "mount /dev/md/ZDATA /storage" in cmds
    assert step_named(plan, "clnt-1", "mount /storage").check == "mountpoint -q /storage"


def test_helper_scripts_are_plan_files_on_every_host(plan):
    for steps in plan.values():
        files = steps[0].files
        assert set(files) == {f"{HELPER_DIR}/{name}" for name in HELPERS}


@pytest.mark.parametrize("name", HELPERS)
def test_helper_scripts_are_valid_sh(name):
    assert subprocess.run(["sh", "-n", str(SCRIPTS / name)]).returncode == 0


def test_another_topology_changes_names_and_addresses(stack):
    data = tomllib.loads(default_topology_path().read_text())
    other = copy.deepcopy(data)
    other["networks"]["private"]["cidr"] = "10.9.8.0/24"
    other["hosts"]["ctrl-a"]["addresses"]["private"] = "10.9.8.1"
    other["hosts"]["ctrl-b"]["addresses"]["private"] = "10.9.8.2"
    other["pools"]["tank-a"] = other["pools"].pop("ctrl-a_m0")
    other["client"]["multipaths"][0]["pool"] = "tank-a"
    topo = topology_from_dict(other)
    text = all_text(stack.provision(topo))
    assert "ctrl-a_m0" not in text and "192.168.56." not in text
    assert "zpool import -f -N -d /dev/disk/by-id tank-a" in text
    assert "10.9.8.1:3260" in text


def test_recovery_exports_reboots_imports_and_rebuilds(stack, paper):
    plan = stack.recovery(paper, "ctrl-a")
    failed = [step.name for step in plan["ctrl-a"]]
    assert failed[:2] == ["export pools", "reboot"]
    assert failed.index("reboot") < failed.index("import ctrl-a_m0") < failed.index("scrub ctrl-a_m0")
    release = " ; ".join(plan["ctrl-a"][0].commands)
    assert release.index("targetcli clearconfig") < release.index("dmsetup remove --retry CTRL_B_BACK")
    assert release.index("--logoutall=all") < release.index("zpool export ctrl-a_m0")
    for host in ("ctrl-a", "ctrl-b"):
        names = [step.name for step in plan[host]]
        assert {"scrub ctrl-a_m0", "scrub ctrl-b_m0", "clear ctrl-a_m0", "clear ctrl-b_m0"} <= set(names)
    assert step_named(plan, "ctrl-a", "scrub ctrl-a_m0").stage == RecoveryStage.SCRUB_ON_FAILED
    assert step_named(plan, "ctrl-b", "scrub ctrl-a_m0").stage == RecoveryStage.SCRUB_ON_SURVIVOR
    assert step_named(plan, "ctrl-b", "multipath CTRL_A_BACK").stage == RecoveryStage.ARBITRATOR
    assert {"private target", "public target"} <= set(failed)
    assert "private target" not in [step.name for step in plan["ctrl-b"]]
    assert "multipath CTRL_A" in [step.name for step in plan["clnt-1"]]
    assert stages(plan) == [s.value for s in RecoveryStage]


def test_recovery_of_a_non_controller_is_refused(stack, paper):
    with pytest.raises(LabError, match="'clnt-1' is not a controller"):
        stack.recovery(paper, "clnt-1")


def test_query_commands(stack, paper):
    assert stack.pool_status_command() == "zpool status -v"
    assert stack.multipath_status_command("CTRL_A") == "dmsetup status CTRL_A"
    assert stack.sessions_command() == "iscsiadm -m session"
    assert stack.md5_command("/storage/f") == "md5sum /storage/f | cut -d' ' -f1"
    unmount, mount = stack.remount_commands(paper)
    assert mount == "mount /dev/md/ZDATA /storage"
    busy_twice = ('n=0; mountpoint() { return 0; }; umount() { n=$((n + 1)); [ $n -gt 2 ] || '
                  '{ echo "umount: /storage: target is busy." >&2; return 32; }; echo "unmounted after $n"; }; '
                  'sleep() { :; }; ')
    done = subprocess.run(["sh", "-c", busy_twice + unmount], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "unmounted after 3"
    never = 'mountpoint() { return 0; }; umount() { return 32; }; sleep() { :; }; '
    assert subprocess.run(["sh", "-c", never + unmount], capture_output=True).returncode == 1


def test_client_paths_fact_reads_dmsetup_status():
    text = (
        "CTRL_A: 0 245760 multipath 2 0 0 0 2 2 E 0 1 2 8:16 F 1 0 1 A 0 1 2 8:48 A 0 0 1\n"
        "CTRL_B: 0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:32 A 0 0 1 E 0 1 2 8:64 A 0 0 1\n"
        "--\n8:16 sda\n8:32 sdb\n8:48 sdc\n8:64 sdd\n"
    )
    assert LinuxStack().client_paths_fact(load_topology()).read(text) == {
        "CTRL_A": {"sda": "failed", "sdc": "active"},
        "CTRL_B": {"sdb": "active", "sdd": "standby"},
    }
