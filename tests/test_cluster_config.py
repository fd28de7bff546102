"""arbitrator = "cluster": the Corosync and Pacemaker configuration the Linux stack writes, validated by
Pacemaker's own schema checker, and the plans that set the cluster up and let a fenced controller rejoin."""

import dataclasses
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from lab.errors import LabError
from lab.providers import create_provider
from lab.stacks import get_stack
from lab.stacks.linux.cluster import (
    FAILURE_TIMEOUT_S,
    FENCE_DEVICE,
    FENCE_RACE_DELAY_S,
    authkey,
    cib_configuration,
    corosync_conf,
    import_arguments,
)
from lab.stacks.linux.parts import SCRIPTS, backstore_name, volume_wwn
from lab.topology import load_topology


def cluster_topology():
    topo = load_topology(None)
    return dataclasses.replace(topo, lab=dataclasses.replace(topo.lab, arbitrator="cluster"))


TOPO = cluster_topology()


def nvpairs(element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in element.iter("nvpair")}


def test_pacemaker_accepts_the_configuration_and_rejects_a_broken_one(tmp_path):
    verify = shutil.which("crm_verify")
    assert verify, "crm_verify is not on PATH: `nox -s tests` unpacks it (pacemaker-cli-utils) into .nox/host-tools"
    cib = ('<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">'
           f"{cib_configuration(TOPO)}<status/></cib>")
    good, bad = tmp_path / "cib.xml", tmp_path / "bad.xml"
    good.write_text(cib)
    bad.write_text(cib.replace('score="100"', 'score="a hundred"'))
    assert subprocess.run([verify, "--xml-file", str(good)], capture_output=True, text=True).returncode == 0
    assert subprocess.run([verify, "--xml-file", str(bad)], capture_output=True, text=True).returncode != 0


def test_each_controller_is_fenced_by_the_stock_agent_on_its_serial_port_and_never_by_itself():
    root = ET.fromstring(cib_configuration(TOPO))
    fences = {p.get("id"): p for p in root.iter("primitive") if p.get("class") == "stonith"}
    assert set(fences) == {"fence-ctrl-a", "fence-ctrl-b"}
    for host in ("ctrl-a", "ctrl-b"):
        params = nvpairs(fences[f"fence-{host}"])
        assert fences[f"fence-{host}"].get("type") == "fence_virt"
        assert params["serial_device"] == FENCE_DEVICE and params["pcmk_host_list"] == host
        assert params["pcmk_reboot_action"] == "off"
        banned = [c for c in root.iter("rsc_location") if c.get("rsc") == f"fence-{host}"]
        assert [(c.get("node"), c.get("score")) for c in banned] == [(host, "-INFINITY")]
    delays = {h: nvpairs(fences[f"fence-{h}"]).get("pcmk_delay_base") for h in ("ctrl-a", "ctrl-b")}
    assert delays == {"ctrl-a": None, "ctrl-b": f"ctrl-b:{FENCE_RACE_DELAY_S}s"}, \
        "Pacemaker 2.1.5 logs 'pcmk_delay_base: empty value in mapping' for a value that is not a mapping"
    assert nvpairs(root.find("crm_config"))["stonith-enabled"] == "true"


def test_each_pool_is_a_group_that_imports_switches_the_map_then_serves_the_zvol_and_prefers_its_owner():
    root = ET.fromstring(cib_configuration(TOPO))
    for host in ("ctrl-a", "ctrl-b"):
        pool = TOPO.pool_of(host)
        group = next(g for g in root.iter("group") if g.get("id") == f"pool-{pool.name}")
        zfs, path, luns = list(group)
        assert (luns.get("provider"), luns.get("type")) == ("beast", "zvol-luns")
        assert nvpairs(luns) == {"zvol": f"/dev/zvol/{pool.zvol_path}", "backstore": backstore_name(pool),
                                 "wwn": volume_wwn(pool), "owner": host,
                                 "luns": f"{TOPO.iscsi.private_target}:0 {TOPO.iscsi.public_target}:0"}
        assert (zfs.get("provider"), zfs.get("type")) == ("beast", "ZFS")
        assert nvpairs(zfs)["pool"] == pool.name
        assert nvpairs(zfs)["importargs"] == import_arguments(TOPO, pool)
        words = import_arguments(TOPO, pool).split()
        assert words[0::2] == ["-d"] * len(pool.disks) and all(w.endswith("-part1") for w in words[1::2])
        assert (path.get("provider"), path.get("type")) == ("beast", "arbitrator-path")
        assert nvpairs(path)["map"] == pool.arbitrator
        prefer = [c for c in root.iter("rsc_location") if c.get("rsc") == group.get("id")]
        assert [(c.get("node"), c.get("score")) for c in prefer] == [(host, "100")]


def timeouts(primitive) -> dict[str, int]:
    return {op.get("name"): int(op.get("timeout").rstrip("s")) for op in primitive.iter("op")}


def test_a_pool_sticks_to_the_survivor_and_a_stop_may_take_as_long_as_a_start():
    root = ET.fromstring(cib_configuration(TOPO))
    defaults = nvpairs(root.find("rsc_defaults"))
    preference = {int(c.get("score")) for c in root.iter("rsc_location") if c.get("rsc", "").startswith("pool-")}
    assert int(defaults["resource-stickiness"]) > max(preference), "stickiness above the preference: no failback"
    assert defaults["failure-timeout"] == f"{FAILURE_TIMEOUT_S}s"
    for group in root.iter("group"):
        for primitive in group.iter("primitive"):
            ops = timeouts(primitive)
            assert ops["stop"] >= ops["start"], f"{primitive.get('id')}: a stop that times out is a fencing"


def test_corosync_declares_a_node_lost_after_token_and_an_explicit_consensus_below_it():
    conf = corosync_conf(TOPO)
    token = int(re.search(r"\btoken: (\d+)", conf).group(1))
    consensus = int(re.search(r"\bconsensus: (\d+)", conf).group(1))
    assert 50 < consensus < token, "corosync.conf(5): for two nodes, above join (50 ms) and below token"


STOCK_ZFS = """#!/bin/sh
# a stock agent that answers from a script of exit codes, one per call
n=$(cat "$CALLS" 2>/dev/null || echo 0)
echo $((n + 1)) > "$CALLS"
echo "$1" >> "$CALLS.log"
set -- $ANSWERS
shift "$n" 2>/dev/null || exit 1
exit "${1:-1}"
"""


def run_zfs_agent(tmp_path, action: str, answers: str, settle_s: int = 1) -> tuple[int, int, list[str]]:
    """Our ocf:beast:ZFS against a stand-in stock agent: (exit code, calls made, actions asked)."""
    stock = tmp_path / "resource.d" / "heartbeat" / "ZFS"
    stock.parent.mkdir(parents=True, exist_ok=True)
    stock.write_text(STOCK_ZFS)
    stock.chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    (tmp_path / "calls.log").unlink(missing_ok=True)
    env = {"PATH": "/usr/bin:/bin", "OCF_ROOT": str(tmp_path), "CALLS": str(calls), "ANSWERS": answers,
           "BEAST_SETTLE_S": str(settle_s)}
    done = subprocess.run(["sh", str(SCRIPTS / "beast-zfs-agent"), action], env=env, timeout=30)
    asked = (tmp_path / "calls.log").read_text().split()
    return done.returncode, int(calls.read_text()), asked


def test_the_zfs_monitor_asks_again_before_it_reports_a_transient_error(tmp_path):
    assert run_zfs_agent(tmp_path, "monitor", "1 1 0") == (0, 3, ["monitor"] * 3), "a transient read: healthy"
    assert run_zfs_agent(tmp_path, "monitor", "7") == (7, 1, ["monitor"]), "not running is said at once"
    assert run_zfs_agent(tmp_path, "monitor", "0") == (0, 1, ["monitor"])
    rc, calls, _ = run_zfs_agent(tmp_path, "monitor", " ".join(["1"] * 20), settle_s=1)
    assert (rc, calls) == (1, 6), "an error that lasts the whole window (1 s: five more looks) is reported"


def test_every_other_zfs_action_is_the_stock_agents_alone(tmp_path):
    for action, code in (("start", 0), ("stop", 1), ("meta-data", 0), ("validate-all", 5)):
        assert run_zfs_agent(tmp_path, action, str(code)) == (code, 1, [action])


def test_corosync_runs_two_knet_links_over_both_networks_and_keeps_quorum_with_one_node():
    conf = corosync_conf(TOPO)
    assert "transport: knet" in conf and conf.count("linknumber:") == 2
    for host in TOPO.controllers:
        assert f"ring0_addr: {host.address('private')}" in conf and f"ring1_addr: {host.address('public')}" in conf
    assert re.search(r"two_node: 1", conf)
    assert len(authkey(TOPO)) >= 128 and authkey(TOPO) == authkey(cluster_topology())


def test_provisioning_hands_imports_to_the_cluster_once_the_arbitrator_maps_exist():
    plan = get_stack("linux").provision(TOPO)
    names = [s.name for s in plan["ctrl-a"]]
    assert names.index("multipath CTRL_B_BACK") < names.index("cluster member") < names.index("cluster resources")
    assert "cluster resources" not in [s.name for s in plan["ctrl-b"]]
    assert "imports belong to the cluster" in [s.name for s in plan["ctrl-b"]]
    create = next(s for s in plan["ctrl-a"] if s.name.startswith("create "))
    assert "multihost" not in create.commands[0], "the cluster fences first: no activity check on takeover"
    assert not any("zpool import" in c for s in plan["ctrl-a"] for c in s.commands)


def test_a_fenced_controller_rejoins_and_waits_for_the_cluster_to_give_its_pool_back_never_importing_itself():
    plan = get_stack("linux").recovery(TOPO, "ctrl-a")
    commands = [c for steps in plan.values() for s in steps for c in s.commands]
    assert not any(re.search(r"zpool (import|export)", c) for c in commands)
    names = [s.name for s in plan["ctrl-a"]]
    assert names.index("rejoin the cluster") < names.index("give pool-ctrl-a_m0 back") < names.index("private target")
    rejoin = plan["ctrl-a"][names.index("rejoin the cluster")]
    assert "systemctl start corosync.service pacemaker.service" in rejoin.commands
    give_back = plan["ctrl-a"][names.index("give pool-ctrl-a_m0 back")]
    move, settled, wait, clear, settled_again = give_back.commands
    assert "crm_resource --move --resource pool-ctrl-a_m0 --node ctrl-a" in move
    assert settled == settled_again and settled.startswith("crm_resource --wait"), \
        "'running on' comes while the group's later members still start: wait for the cluster to settle"
    assert "running on: ctrl-a" in wait and "zpool list -H -o name ctrl-a_m0" in wait, \
        "Pacemaker says 'running on' while the import still runs: the wait must include the import"
    assert clear == "crm_resource --clear --resource pool-ctrl-a_m0", "the move leaves no constraint behind"
    assert "cli-prefer-pool-ctrl-a_m0" in give_back.check
    assert get_stack("linux").takeover(TOPO, "ctrl-a") == {}


def test_the_cluster_mode_is_refused_where_it_cannot_run():
    with pytest.raises(LabError, match='freebsd stack cannot run arbitrator = "cluster"'):
        get_stack("freebsd").check_arbitrator(TOPO)
    with pytest.raises(LabError, match="needs the qemu provider, not virtualbox"):
        create_provider(TOPO, "virtualbox")
