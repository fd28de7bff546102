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
    FENCE_DEVICE,
    FENCE_RACE_DELAY_S,
    authkey,
    cib_configuration,
    corosync_conf,
    import_arguments,
)
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


def test_each_pool_is_a_group_that_imports_then_switches_the_map_and_prefers_its_owner():
    root = ET.fromstring(cib_configuration(TOPO))
    for host in ("ctrl-a", "ctrl-b"):
        pool = TOPO.pool_of(host)
        group = next(g for g in root.iter("group") if g.get("id") == f"pool-{pool.name}")
        zfs, path = list(group)
        assert (zfs.get("provider"), zfs.get("type")) == ("heartbeat", "ZFS")
        assert nvpairs(zfs)["pool"] == pool.name
        assert nvpairs(zfs)["importargs"] == import_arguments(TOPO, pool)
        words = import_arguments(TOPO, pool).split()
        assert words[0::2] == ["-d"] * len(pool.disks) and all(w.endswith("-part1") for w in words[1::2])
        assert (path.get("provider"), path.get("type")) == ("beast", "arbitrator-path")
        assert nvpairs(path)["map"] == pool.arbitrator
        prefer = [c for c in root.iter("rsc_location") if c.get("rsc") == group.get("id")]
        assert [(c.get("node"), c.get("score")) for c in prefer] == [(host, "100")]


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
    rejoin = next(s for s in plan["ctrl-a"] if s.name.startswith("rejoin the cluster"))
    assert "systemctl start corosync.service pacemaker.service" in rejoin.commands
    waited_for = rejoin.verify.split("; do ", 1)[0]
    assert "running on: ctrl-a" in waited_for and "zpool list -H -o name ctrl-a_m0" in waited_for, \
        "Pacemaker says 'running on' while the import still runs: the wait must include the import"
    assert get_stack("linux").takeover(TOPO, "ctrl-a") == {}


def test_the_cluster_mode_is_refused_where_it_cannot_run():
    with pytest.raises(LabError, match='freebsd stack cannot run arbitrator = "cluster"'):
        get_stack("freebsd").check_arbitrator(TOPO)
    with pytest.raises(LabError, match="needs the qemu provider, not virtualbox"):
        create_provider(TOPO, "virtualbox")
