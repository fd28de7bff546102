"""The client's multipathd maps, offline: multipath.conf from the topology, the WWID LIO gives a volume,
the client's steps in every arbitrator mode, and the map check run against fake dmsetup and lsblk."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.plan import Plan
from lab.stacks.linux import SCRIPTS, LinuxStack, lun_path
from lab.stacks.linux.client_multipath import (
    MAP_OK_HELPER,
    MULTIPATH_CONF_PATH,
    lio_wwid,
    multipath_conf,
)
from lab.stacks.linux.parts import volume_wwn
from lab.topology import Topology, default_topology_path, load_topology, topology_from_dict

PAPER_DATA = tomllib.loads(default_topology_path().read_text())
PUBLIC = "iqn.2016-01.local.sss.public:target0"
A0, B1 = lun_path("192.168.55.10", PUBLIC, 0), lun_path("192.168.55.11", PUBLIC, 1)
B0, A1 = lun_path("192.168.55.11", PUBLIC, 0), lun_path("192.168.55.10", PUBLIC, 1)


def topology(arbitrator: str = "paper", **public: str) -> Topology:
    data = copy.deepcopy(PAPER_DATA)
    data["lab"]["arbitrator"] = arbitrator
    for host, address in public.items():
        data["hosts"][host.replace("_", "-")]["addresses"]["public"] = address
    return topology_from_dict(data, source="test.toml")


def conf_sections(text: str) -> dict[str, list]:
    """multipath.conf as {section: [(key, value) | [(key, value), ...] for a subsection]}."""
    sections: dict[str, list] = {}
    stack: list[list] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            block: list = []
            if stack:
                stack[-1].append(block)
            else:
                sections[line[:-1].strip()] = block
            stack.append(block)
        elif line == "}":
            stack.pop()
        else:
            key, value = line.split(maxsplit=1)
            stack[-1].append((key, value.strip('"')))
    assert not stack, "unbalanced braces"
    return sections


@pytest.fixture(scope="module")
def paper() -> Topology:
    return load_topology()


@pytest.fixture(scope="module")
def conf(paper) -> dict[str, list]:
    return conf_sections(multipath_conf(paper))


def wwid_of(topo: Topology, pool: str) -> str:
    return lio_wwid(volume_wwn(topo.pools[pool]))


def test_lio_wwid_is_naa_6_with_lio_company_id_and_25_serial_digits():
    assert lio_wwid("a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d") == "36001405a1b2c3d45e6f4a7b8c9d0e1f2"
    assert lio_wwid("A1B2C3D4-5E6F-4A7B-8C9D-0E1F2A3B4C5D") == "36001405a1b2c3d45e6f4a7b8c9d0e1f2"
    with pytest.raises(LabError, match="has 24 hex digits; a WWID needs 25"):
        lio_wwid("a1b2c3d4-5e6f-4a7b-8c9d-0e1f")


def test_the_volumes_wwids_are_their_unit_serials(paper):
    for pool in ("ctrl-a_m0", "ctrl-b_m0"):
        serial = volume_wwn(paper.pools[pool]).replace("-", "")
        assert wwid_of(paper, pool) == f"36001405{serial[:25]}"
        assert len(wwid_of(paper, pool)) == 33


def test_conf_takes_only_the_labs_two_volumes(paper, conf):
    assert conf["blacklist"] == [("wwid", ".*")]
    assert conf["blacklist_exceptions"] == [("wwid", f"^{wwid_of(paper, 'ctrl-a_m0')}$"),
                                            ("wwid", f"^{wwid_of(paper, 'ctrl-b_m0')}$")]
    assert ("find_multipaths", "greedy") in conf["defaults"]


def test_conf_orders_each_map_owner_first_by_iet_priority(paper, conf):
    entries = {dict(e)["alias"]: dict(e) for e in conf["multipaths"]}
    assert set(entries) == {"CTRL_A", "CTRL_B"}
    for alias, pool, owner in (("CTRL_A", "ctrl-a_m0", "192.168.55.10"), ("CTRL_B", "ctrl-b_m0", "192.168.55.11")):
        entry = entries[alias]
        assert entry["wwid"] == wwid_of(paper, pool)
        assert entry["path_grouping_policy"] == "group_by_prio"
        assert (entry["prio"], entry["prio_args"]) == ("iet", f"preferredip={owner}")
        assert entry["failback"] == "immediate"
    # LIO's built-in entry (prio alua, both paths active/optimized) must not win: autodetection off
    # where multipath-tools reads it (overrides), and no device section to bring alua back.
    assert ("detect_prio", "no") in conf["overrides"]
    assert "devices" not in conf


def test_conf_checks_paths_and_queues_through_the_worst_failover(conf):
    defaults, overrides = dict(conf["defaults"]), dict(conf["overrides"])
    assert overrides["path_checker"] == "tur" and overrides["detect_checker"] == "no"
    polling = int(defaults["polling_interval"])
    assert polling == 2 and int(defaults["max_polling_interval"]) <= 2 * polling
    for entry in map(dict, conf["multipaths"]):
        queued_s = int(entry["no_path_retry"]) * polling
        assert 40 < queued_s <= 90, "cover the ~40 s takeover, then fail like gmultipath"
    assert defaults["fast_io_fail_tmo"] == "5"


@pytest.mark.parametrize(("change", "message"), [
    ({"ctrl_b": "192.168.55.1"}, "'192.168.55.1' is a prefix of the owner's '192.168.55.10'"),
])
def test_conf_refuses_addresses_iet_cannot_tell_apart(change, message):
    with pytest.raises(LabError, match=re.escape(message)):
        multipath_conf(topology(**change))


def test_conf_refuses_an_alias_multipathd_cannot_take(paper):
    """The loader's device-name rule already refuses this; the conf does not rely on it."""
    first, second = paper.client.multipaths
    client = dataclasses.replace(paper.client, multipaths=(dataclasses.replace(first, name='CTRL"A'), second))
    with pytest.raises(LabError, match="cannot be a multipathd alias"):
        multipath_conf(dataclasses.replace(paper, client=client))


def names(plan: Plan, host: str) -> list[str]:
    return [step.name for step in plan[host]]


@pytest.mark.parametrize("arbitrator", ["paper", "takeover", "cluster"])
def test_client_starts_multipathd_then_logs_in_then_waits_for_the_maps(arbitrator):
    topo = topology(arbitrator)
    plan = LinuxStack().provision(topo)
    client = names(plan, "clnt-1")
    logins = [i for i, name in enumerate(client) if name.startswith("login ")]
    assert client.index("multipathd") < min(logins)
    assert max(logins) < client.index("multipath CTRL_A") < client.index("stripe ZDATA")
    assert max(logins) < client.index("multipath CTRL_B") < client.index("stripe ZDATA")
    step = plan["clnt-1"][client.index("multipathd")]
    assert step.files[MULTIPATH_CONF_PATH] == multipath_conf(topo)
    assert step.files[f"/usr/local/sbin/{MAP_OK_HELPER}"] == (SCRIPTS / MAP_OK_HELPER).read_text()
    assert "systemctl enable --now multipathd.socket multipathd.service" in step.commands
    assert "systemctl is-active --quiet multipathd.service" in step.check
    commands = [c for s in plan["clnt-1"] for c in s.commands]
    assert not any(c.startswith("beast-dm-multipath ") for c in commands)


@pytest.mark.parametrize("arbitrator", ["paper", "takeover", "cluster"])
def test_controllers_never_run_multipathd(arbitrator):
    topo = topology(arbitrator)
    stack = LinuxStack()
    for plan in (stack.provision(topo), stack.recovery(topo, "ctrl-a"), stack.takeover(topo, "ctrl-a")):
        for host in ("ctrl-a", "ctrl-b"):
            for step in plan.get(host, []):
                assert MULTIPATH_CONF_PATH not in step.files
                assert not any("multipathd" in c for c in step.commands), step.name


def test_map_steps_check_owner_first_and_wait(paper):
    plan = LinuxStack().provision(paper)
    a = next(s for s in plan["clnt-1"] if s.name == "multipath CTRL_A")
    b = next(s for s in plan["clnt-1"] if s.name == "multipath CTRL_B")
    assert a.check == f"{MAP_OK_HELPER} CTRL_A {wwid_of(paper, 'ctrl-a_m0')} {A0} {B1}"
    assert b.check == f"{MAP_OK_HELPER} CTRL_B {wwid_of(paper, 'ctrl-b_m0')} {B0} {A1}"
    assert a.verify.startswith("i=0; until ") and a.verify.endswith(a.check)
    assert "multipathd reconfigure" in a.commands


@pytest.mark.parametrize("arbitrator", ["paper", "takeover", "cluster"])
def test_recovery_reruns_the_same_client_steps(arbitrator):
    topo = topology(arbitrator)
    stack = LinuxStack()
    client = stack.provision(topo)["clnt-1"]
    start = [s.name for s in client].index("multipathd")
    provision = {s.name: s for s in client[start:]}
    recovery = stack.recovery(topo, "ctrl-a")["clnt-1"]
    assert [s.name for s in recovery] == list(provision)
    for step in recovery:
        assert (step.files, step.commands, step.check, step.verify) == (
            provision[step.name].files, provision[step.name].commands, provision[step.name].check,
            provision[step.name].verify)


# The map check and the foreign-map guard, run by sh against fakes that answer as dmsetup and lsblk do.

DEVICES = {"/dev/mapper/CTRL_A": "253:2", A0: "8:16", B1: "8:48"}
WWID = "36001405a1b2c3d45e6f4a7b8c9d0e1f2"
GOOD = "0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:48 A 0 0 1"


def fake_tools(tmp_path: Path, uuid: str | None, status: str, devices: dict[str, str]) -> dict[str, str]:
    """dmsetup: ``info`` fails when the map is absent (uuid None), prints the uuid with ``-o uuid``;
    ``status`` prints one line. lsblk: MAJ:MIN of a known path, exit 32 ("not a block device") otherwise."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cases = "".join(f"  {path}) echo {devno} ;;\n" for path, devno in devices.items())
    (bin_dir / "lsblk").write_text(
        f'#!/bin/sh\n[ "$1" = -dnro ] && [ "$2" = MAJ:MIN ] || exit 1\ncase "$3" in\n{cases}'
        '  *) echo "lsblk: $3: not a block device" >&2; exit 32 ;;\nesac\n')
    exists = "exit 1" if uuid is None else ('case "$*" in *"-o uuid"*) echo ' + repr(uuid) + ' ;; esac')
    (bin_dir / "dmsetup").write_text(
        '#!/bin/sh\ncase "$1" in\n'
        f'  info) {exists} ;;\n'
        f"  status) {'exit 1' if uuid is None else 'echo ' + repr(status)} ;;\n"
        "  *) exit 1 ;;\nesac\n")
    for tool in ("lsblk", "dmsetup"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def map_ok(tmp_path: Path, uuid: str | None = f"mpath-{WWID}", status: str = GOOD,
           devices: dict[str, str] | None = None) -> int:
    env = fake_tools(tmp_path, uuid, status, DEVICES if devices is None else devices)
    return subprocess.run(["sh", str(SCRIPTS / MAP_OK_HELPER), "CTRL_A", WWID, A0, B1], env=env).returncode


def test_map_check_passes_for_multipathds_owner_first_map(tmp_path):
    assert map_ok(tmp_path) == 0


def test_map_check_passes_when_the_owners_group_is_listed_second_but_in_use(tmp_path):
    """multipathd keeps the groups in the order it found the paths and switches to the best one (measured on
    CTRL_B: the peer's prio-10 path came first, the owner's prio-20 group in use)."""
    assert map_ok(tmp_path, status="0 245760 multipath 2 0 0 0 2 2 E 0 1 2 8:48 A 0 0 1 A 0 1 2 8:16 A 0 0 1") == 0


@pytest.mark.parametrize(("what", "kwargs"), [
    ("both paths in one group (ALUA ranked them equal)",
     {"status": "0 245760 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:48 A 0 0 1"}),
    ("peer's group first and in use",
     {"status": "0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:48 A 0 0 1 E 0 1 2 8:16 A 0 0 1"}),
    ("owner's path failed", {"status": "0 245760 multipath 2 0 0 0 2 2 E 0 1 2 8:16 F 1 0 1 A 0 1 2 8:48 A 0 0 1"}),
    ("peer's path failed", {"status": "0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:48 F 2 0 1"}),
    ("one path left", {"status": "0 245760 multipath 2 1 0 0 1 1 A 0 1 2 8:48 A 0 0 1"}),
    ("group 2 in use", {"status": "0 245760 multipath 2 0 0 0 2 2 E 0 1 2 8:16 A 0 0 1 A 0 1 2 8:48 A 0 0 1"}),
    ("a dmsetup-made map (no uuid)", {"uuid": ""}),
    ("another volume's map", {"uuid": "mpath-3600140500000000000000000000000000"}),
    ("no map", {"uuid": None}),
    ("no /dev/mapper node yet", {"devices": {A0: "8:16", B1: "8:48"}}),
    ("peer's lun not logged in", {"devices": {"/dev/mapper/CTRL_A": "253:2", A0: "8:16"}}),
])
def test_map_check_fails(tmp_path, what, kwargs):
    assert map_ok(tmp_path, **kwargs) == 1, what


@pytest.mark.parametrize(("uuid", "refused"), [(None, False), (f"mpath-{WWID}", False), ("", True)])
def test_map_step_refuses_a_map_multipathd_does_not_own(tmp_path, uuid, refused):
    topo = load_topology()
    step = next(s for s in LinuxStack().provision(topo)["clnt-1"] if s.name == "multipath CTRL_A")
    guard = step.commands[0].replace(wwid_of(topo, "ctrl-a_m0"), WWID)
    result = subprocess.run(["sh", "-c", guard], env=fake_tools(tmp_path, uuid, GOOD, DEVICES),
                            capture_output=True, text=True)
    assert (result.returncode != 0) == refused
    assert ("CTRL_A is a device-mapper map multipathd does not own" in result.stderr) == refused


def test_map_check_is_valid_sh():
    assert subprocess.run(["sh", "-n", str(SCRIPTS / MAP_OK_HELPER)]).returncode == 0


# The drill's client-path facts over multipathd's maps.

MULTIPATHD_STATUS = {
    "both paths, owner's in use": (
        "CTRL_A: 0 245760 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:48 A 0 0 1\n",
        {"sdb": "active", "sdd": "standby"}),
    "owner's path failed, the peer's in use": (
        "CTRL_A: 0 245760 multipath 2 0 0 0 2 2 D 0 1 2 8:16 F 1 0 1 A 0 1 2 8:48 A 0 0 1\n",
        {"sdb": "failed", "sdd": "active"}),
    "no path, queueing (no_path_retry)": (
        "CTRL_A: 0 245760 multipath 2 1 0 0 2 2 E 0 1 2 8:16 F 1 0 1 E 0 1 2 8:48 F 4 0 1\n",
        {"sdb": "failed", "sdd": "failed"}),
    "owner's path removed after a logout": (
        "CTRL_A: 0 245760 multipath 2 0 0 0 1 1 A 0 1 2 8:48 A 0 0 1\n", {"sdd": "active"}),
}


@pytest.mark.parametrize("case", MULTIPATHD_STATUS)
def test_client_paths_read_multipathd_maps(paper, case):
    status, expected = MULTIPATHD_STATUS[case]
    text = f"{status}--\n8:0 sda\n8:16 sdb\n8:48 sdd\n253:2 dm-2\n"
    assert LinuxStack().client_paths_fact(paper).read(text)["CTRL_A"] == expected


def test_client_paths_leave_out_a_map_that_does_not_exist(tmp_path, paper):
    """Run as the drill runs it: CTRL_B is gone (flushed), CTRL_A answers; the drill then sees CTRL_B with
    no paths instead of output it cannot read."""
    from lab.drill.checks import path_problems

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dmsetup").write_text(
        '#!/bin/sh\n[ "$1" = status ] || exit 1\ncase "$2" in\n'
        f"  CTRL_A) echo {GOOD!r} ;;\n"
        '  *) echo "Device does not exist." >&2; echo "Command failed." >&2; exit 1 ;;\nesac\n')
    (bin_dir / "lsblk").write_text("#!/bin/sh\nprintf '8:16 sdb\\n8:48 sdd\\n'\n")
    for tool in ("dmsetup", "lsblk"):
        (bin_dir / tool).chmod(0o755)
    fact = LinuxStack().client_paths_fact(paper)
    result = subprocess.run(["sh", "-c", fact.command], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True)
    paths = fact.read(result.stdout)
    assert paths == {"CTRL_A": {"sdb": "active", "sdd": "standby"}}
    assert path_problems(paths, ["CTRL_A", "CTRL_B"]) == ["client multipath CTRL_B has 0 paths, failed: none"]
    assert fact.read("--\n8:16 sdb\n") == {}


def test_lio_disks_get_a_scsi_timeout_longer_than_a_takeover_and_the_check_sees_one_that_did_not(tmp_path):
    from lab.stacks.linux.client_multipath import SCSI_TIMEOUT_RULE_PATH, SCSI_TIMEOUT_S, scsi_timeout_step

    step = scsi_timeout_step(6)
    rule = step.files[SCSI_TIMEOUT_RULE_PATH]
    assert 'ATTR{vendor}=="LIO-ORG*"' in rule and f'ATTR{{timeout}}="{SCSI_TIMEOUT_S}"' in rule
    assert SCSI_TIMEOUT_S > 60, "longer than the slowest takeover measured (45 s)"
    sysfs = tmp_path / "sys"
    for name, vendor, timeout in (("6:0:0:0", "LIO-ORG ", SCSI_TIMEOUT_S), ("0:0:0:0", "QEMU    ", 30)):
        device = sysfs / name / "device"
        device.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
        (device / "timeout").write_text(f"{timeout}\n")
    (tmp_path / "rule").write_text(rule)

    def check() -> int:
        command = step.check.replace("/sys/class/scsi_device", str(sysfs)).replace(SCSI_TIMEOUT_RULE_PATH,
                                                                                 str(tmp_path / "rule"))
        return subprocess.run(["sh", "-c", command]).returncode

    assert check() == 0
    (sysfs / "6:0:0:0" / "device" / "timeout").write_text("30\n")
    assert check() == 1
