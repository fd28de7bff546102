"""Hostile but honest topologies (issue 12): names that walk out of a directory or into a command line, mounts
over system trees, lines injected into guest config files, numbers no VM can hold. Each is one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from topology_support import refused

from lab.errors import LabError, TopologyError
from lab.stacks import get_stack, stack_name_for
from lab.stacks.freebsd import rc_conf
from lab.topology import default_topology_path, load_topology, topology_from_dict


def with_network(data: dict, name: str, description: str = "") -> dict:
    """``data`` plus a network ``name`` that the client has an address on (so a provider would build it)."""
    data = copy.deepcopy(data)
    data["networks"][name] = {"cidr": "10.77.0.0/24", "description": description}
    data["hosts"]["clnt-1"]["addresses"][name] = "10.77.0.20"
    return data


@pytest.mark.parametrize("name", ["../../victim", "a,b", "x,sock=/tmp/other", "net/sub", "Storage", "-x", "a" * 32])
def test_a_network_name_that_reaches_a_path_or_a_qemu_option_is_refused(paper_data, name):
    """Harm 1: the QEMU provider removes lab_dir/net/<name> and passes the name in -netdev id=<name>."""
    text = refused(with_network(paper_data, name))
    assert f"networks.{name} '{name}' is not a valid network name; use 1 to 31 lowercase letters" in text


def test_a_network_named_like_the_management_nic_is_refused(paper_data):
    text = refused(with_network(paper_data, "management"))
    assert "networks.management 'management' is the name of the lab's own management network" in text


@pytest.mark.parametrize("description", ["LAN\nifconfig_em9=\"up\"", "LAN\rx", "tab\there", "bell\x07", "nul\x00",
                                         "sep\u2028line"])
def test_a_description_with_a_line_break_or_control_character_is_refused(paper_data, description):
    """Harm 4: FreeBSD's rc.conf.local carries the description in a comment; a newline started a shell line."""
    data = copy.deepcopy(paper_data)
    data["networks"]["private"]["description"] = description
    text = refused(data)
    assert "networks.private.description contains the control character" in text
    assert "write it on one line with printable characters only" in text


def test_a_printable_description_stays_one_comment_in_rc_conf(paper_data):
    topo = topology_from_dict(with_network(paper_data, "storage", 'ünïcode "quoted" $(not run) # ok'))
    lines = rc_conf(topo, topo.client_host).splitlines()
    assert [line for line in lines if "$(not run)" in line] == [
        'ifconfig_em1="inet 10.77.0.20 netmask 255.255.255.0" # ünïcode "quoted" $(not run) # ok']


@pytest.mark.parametrize("mountpoint", ["/etc", "/./usr", "/usr/local/beast", "/", "//storage", "/storage/",
                                        "/storage/../etc", "/var/tmp/x", "/tmp/x", "/root", "/home/me/data", "/boot",
                                        "/dev/shm/x", "/lib64", "/a b", "/$(id)", "/storage\n"])
def test_a_mountpoint_over_a_system_tree_or_not_normalised_is_refused(paper_data, mountpoint):
    """Harm 5: the client plan formats a device and mounts it on client.mountpoint."""
    data = copy.deepcopy(paper_data)
    data["client"]["mountpoint"] = mountpoint
    assert "client.mountpoint" in refused(data)


@pytest.mark.parametrize("mountpoint", ["/storage", "/mnt/beast", "/srv/beast-data", "/data.1/x_y"])
def test_a_fresh_directory_outside_system_trees_is_a_mountpoint(paper_data, mountpoint):
    data = copy.deepcopy(paper_data)
    data["client"]["mountpoint"] = mountpoint
    assert topology_from_dict(data).client.mountpoint == mountpoint


@pytest.mark.parametrize("name", ["log", "mirror", "raidz", "raidz2", "raidz3x", "draid", "draid2:4d", "spare",
                                  "spare-pool", "mirrored", "cache", "special", "dedup", "c0t0d0", "c1", "Mirror"])
def test_pool_names_zfs_reserves_are_refused(paper_data, name):
    data = copy.deepcopy(paper_data)
    data["pools"][name] = data["pools"].pop("ctrl-a_m0")
    data["client"]["multipaths"][0]["pool"] = name
    text = refused(data)
    assert f"pools.{name} '{name}'" in text and "reserve" in text


@pytest.mark.parametrize(("field", "value", "message"), [
    # names that are paths or options
    *(("name", name, f"pools.ctrl-a_m0.zvol.name '{name}' is not a valid dataset name")
      for name in ("..", ".", "-rf", "v0/../../x", "v 0")),
    # sizes that do not fit the pool or are not sizes
    ("size", "99999T", "99999T is larger than the pool's data disks (512 MiB in all)"),
    ("size", "513M", "is larger than the pool's data disks"),
    ("size", "385M", "hold once OpenZFS keeps its slop space"),
    ("size", "120M\n", "is not a size"),
    ("size", "16777217", "is not a whole number of MiB"),
    ("size", "１２０M", "is not a size"),
    ("size", "99999999999999999999T", "is not a size"),
])
def test_zvol_names_and_sizes_the_pool_cannot_take_are_refused(paper_data, field, value, message):
    data = copy.deepcopy(paper_data)
    data["pools"]["ctrl-a_m0"]["zvol"][field] = value
    assert message in refused(data)


def test_a_zvol_filling_its_data_disks_but_for_slop_space_is_accepted(paper_data):
    data = copy.deepcopy(paper_data)
    data["pools"]["ctrl-a_m0"]["zvol"]["size"] = "384M"
    assert topology_from_dict(data).pools["ctrl-a_m0"].zvol.size_bytes == 384 << 20


def test_memory_no_vm_can_hold_is_refused(paper_data):
    data = copy.deepcopy(paper_data)
    data["hosts"]["ctrl-a"]["memory_mb"] = 2**63 - 1
    assert "hosts.ctrl-a.memory_mb 9223372036854775807 is more than a lab VM can be given; use at most" in refused(
        data)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+inf", "1e9"])
def test_kill_after_must_be_a_finite_time(tmp_path, value):
    text = default_topology_path().read_text().replace("kill_after_s = 3 ", f"kill_after_s = {value} ")
    assert f"kill_after_s = {value} " in text
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=r"drill\.kill_after_s .* (is not a finite number|is out of range); "
                                            r"use 0 to 3600 seconds$"):
        load_topology(path)


def test_probe_interval_nan_is_refused(paper_data):
    data = copy.deepcopy(paper_data)
    data["drill"]["probe_interval_s"] = float("nan")
    assert "drill.probe_interval_s nan is not a finite number; use 0.05 to 60 seconds" in refused(data)


def test_a_copy_larger_than_the_stripe_is_refused(paper_data):
    data = copy.deepcopy(paper_data)
    data["drill"]["copy_size_mb"] = 240
    assert "drill.copy_size_mb 240 MiB does not fit the client's stripe (240 MiB of volumes)" in refused(data)


def test_boot_timeout_is_bounded(paper_data):
    data = copy.deepcopy(paper_data)
    data["lab"]["boot_timeout_s"] = 10**30
    assert "lab.boot_timeout_s" in refused(data)


def test_a_disk_name_whose_serial_qemu_would_cut_is_refused(paper_data):
    data = copy.deepcopy(paper_data)
    data["disks"]["d00-long-name-x"] = data["disks"].pop("d00")
    data["pools"]["ctrl-a_m0"]["data"][0] = "d00-long-name-x"
    assert "must fit an ATA serial's 20 characters" in refused(data)
    data["disks"]["d00-long-name"] = data["disks"].pop("d00-long-name-x")
    data["pools"]["ctrl-a_m0"]["data"][0] = "d00-long-name"
    assert len(topology_from_dict(data).disks["d00-long-name"].serial) == 19


@pytest.mark.parametrize("iqn", ["iqn.2016-13.local.sss:t", "iqn.2016-01..:x", "iqn.2016-01.local.sss:t\n",
                                 "iqn.2016-01.local.sss:" + "t" * 210, "iqn.2016-01.local.sss:t;id"])
def test_target_names_are_iscsi_names(paper_data, iqn):
    data = copy.deepcopy(paper_data)
    data["iscsi"]["public_target"] = iqn
    assert "iscsi.public_target" in refused(data)


@pytest.mark.parametrize(("path", "value"), [
    (("hosts", "ctrl-a"), "../ctrl-a"),
    (("client", "stripe"), "ZDATA;reboot"),
    (("pools", "ctrl-a_m0", "arbitrator"), "../../x"),
    (("lab", "name"), "../beast"),
])
def test_other_names_that_reach_paths_are_refused(paper_data, path, value):
    data = copy.deepcopy(paper_data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if path[0] == "hosts":
        node[value] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    assert "not a valid" in refused(data)


def test_a_topology_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(default_topology_path().read_bytes().replace(b"inter-controller", b"inter-contr\xf4ller"))
    offset = path.read_bytes().index(0xF4)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    assert str(err.value) == f"topology file {path} is not UTF-8 text (byte 0xf4 at offset {offset}); save it as UTF-8"


def test_a_directory_as_topology_is_one_line(tmp_path):
    with pytest.raises(TopologyError, match="is a directory; pass a .toml file with --topology$"):
        load_topology(tmp_path)


def test_provider_and_stack_names_come_from_the_registries(paper_data, monkeypatch):
    from lab import providers, stacks

    data = copy.deepcopy(paper_data)
    data["lab"]["provider"] = "bhyve"
    assert "lab.provider 'bhyve' is not a provider; use one of auto, qemu, virtualbox" in refused(data)
    monkeypatch.setitem(providers.PROVIDERS, "bhyve", "lab.providers.bhyve:BhyveProvider")
    assert topology_from_dict(data).lab.provider == "bhyve"
    data["lab"]["stack"] = "illumos"
    assert "lab.stack 'illumos' is not a stack; use one of auto, freebsd, linux" in refused(data)
    monkeypatch.setitem(stacks.STACKS, "illumos", "lab.stacks.illumos:IllumosStack")
    assert topology_from_dict(data).lab.stack == "illumos"


def test_an_empty_stack_option_is_an_unknown_stack_not_the_default():
    assert stack_name_for("auto", "", "qemu") == ""
    with pytest.raises(LabError, match="unknown stack ''"):
        get_stack("")
    assert stack_name_for("auto", None, "qemu") == "linux"


def _bst(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("edit", "args", "message"), [
    (lambda t: t.replace(b"inter-controller", b"inter-contr\xf4ller"), (), "is not UTF-8 text"),
    (lambda t: t.replace(b'mountpoint = "/storage"', b'mountpoint = "/./usr"'), (),
     "client.mountpoint '/./usr' is not a normalised path"),
    (lambda t: t.replace(b"[networks.public]", b'[networks."../../victim"]\ncidr = "10.9.0.0/24"\n\n[networks.public]'),
     (), "networks.../../victim '../../victim' is not a valid network name"),
    (lambda t: t, ("--stack", ""), "unknown stack ''"),
])
def test_bst_plan_gives_one_line_and_exit_2(tmp_path, edit, args, message):
    path = tmp_path / "t.toml"
    path.write_bytes(edit(default_topology_path().read_bytes()))
    result = _bst("plan", "--topology", str(path), *args)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
