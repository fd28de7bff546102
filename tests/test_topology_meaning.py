"""Hostile input, round two: topology values that parse but mean nothing possible (networks the providers or
the IP stack keep for themselves, iSCSI names equal but for case, volumes that ZFS's slop space leaves no room
for, more disk than a host holds). Each is one line naming the field and the way out."""

from __future__ import annotations

import copy
import ipaddress

import pytest
from topology_support import refused

from lab.errors import TopologyError
from lab.providers import create_provider
from lab.topology import default_topology_path, rules, topology_from_dict


def with_private_network(data: dict, cidr: str, address: str) -> dict:
    data = copy.deepcopy(data)
    data["networks"]["private"]["cidr"] = cidr
    data["hosts"]["ctrl-a"]["addresses"]["private"] = address
    data["hosts"]["ctrl-b"]["addresses"]["private"] = str(ipaddress.IPv4Address(address) + 1)
    return data


@pytest.mark.parametrize(("cidr", "address", "what"), [
    ("10.0.2.0/24", "10.0.2.10", "overlaps 10.0.2.0/24, the management network"),
    ("10.0.0.0/16", "10.0.5.10", "overlaps 10.0.2.0/24, the management network"),
    ("10.0.2.128/25", "10.0.2.130", "overlaps 10.0.2.0/24, the management network"),
    ("127.0.0.0/24", "127.0.0.10", "the loopback range 127.0.0.0/8"),
    ("169.254.1.0/24", "169.254.1.10", "the link-local range 169.254.0.0/16"),
    ("224.0.1.0/24", "224.0.1.10", "the multicast range 224.0.0.0/4"),
    ("0.0.0.0/24", "0.0.0.10", "the unspecified 'this network' range 0.0.0.0/8"),
    ("240.1.0.0/24", "240.1.0.10", "the reserved range 240.0.0.0/4"),
    ("96.0.0.0/3", "96.0.0.10", "the loopback range 127.0.0.0/8"),
])
def test_a_network_no_lab_nic_can_use_is_refused(paper_data, cidr, address, what):
    text = refused(with_private_network(paper_data, cidr, address))
    assert f"networks.private.cidr {cidr} " in text and what in text and "; use " in text


def test_ordinary_private_and_public_ranges_are_accepted(paper_data):
    for cidr, address in (("10.0.3.0/24", "10.0.3.10"), ("172.16.0.0/24", "172.16.0.10"),
                          ("100.64.0.0/24", "100.64.0.10")):
        topology_from_dict(with_private_network(paper_data, cidr, address))


def test_an_address_virtualbox_gives_the_host_is_refused_for_virtualbox(paper_data):
    data = copy.deepcopy(paper_data)
    data["lab"]["provider"] = "virtualbox"
    data["hosts"]["ctrl-a"]["addresses"]["public"] = "192.168.55.1"
    text = refused(data)
    assert ("hosts.ctrl-a.addresses.public 192.168.55.1 is the address VirtualBox gives the host on the host-only "
            "network public; give the VM another address of that network, like .10") in text


def test_the_first_address_is_a_vms_on_qemu_but_not_when_virtualbox_is_chosen_later(paper_data):
    """A topology with provider auto may run on either: qemu keeps no address of a lab network."""
    data = copy.deepcopy(paper_data)
    data["hosts"]["ctrl-a"]["addresses"]["public"] = "192.168.55.1"
    topo = topology_from_dict(data, source="t.toml")
    assert str(topo.hosts["ctrl-a"].addresses["public"]) == "192.168.55.1"
    with pytest.raises(TopologyError, match="VirtualBox gives the host"):
        create_provider(topo, "virtualbox")


@pytest.mark.parametrize("public", ["IQN.2016-01.LOCAL.SSS.PRIVATE:TARGET0", "iqn.2016-01.local.sss.private:Target0"])
def test_targets_equal_but_for_case_are_the_same_name(paper_data, public):
    data = copy.deepcopy(paper_data)
    data["iscsi"]["public_target"] = public
    text = refused(data)
    assert "iscsi.public_target" in text
    if public.startswith("iqn."):
        assert "is the same iSCSI name as private_target (iSCSI names ignore case, RFC 3722)" in text


@pytest.mark.parametrize(("pool_mb", "slop_mb"), [(512, 128), (200, 100), (4096, 128), (8192, 256),
                                                  (16 << 20, 128 << 10)])
def test_slop_space_is_openzfs_arithmetic(pool_mb, slop_mb):
    assert rules.slop_bytes(pool_mb << 20) == slop_mb << 20


def test_a_zvol_that_does_not_fit_after_slop_space_is_refused_with_the_arithmetic(paper_data):
    data = copy.deepcopy(paper_data)
    data["pools"]["ctrl-a_m0"]["zvol"]["size"] = "385M"
    text = refused(data)
    assert ("pools.ctrl-a_m0.zvol.size 385M is larger than the pool's data disks (512 MiB in all) hold once "
            "OpenZFS keeps its slop space: max(min(512 MiB / 32, 128 GiB), min(512 MiB / 2, 128 MiB)) = 128 MiB, "
            "leaving 384 MiB; use 384M or less, or larger data disks") in text
    data["pools"]["ctrl-a_m0"]["zvol"]["size"] = "384M"
    assert topology_from_dict(data).pools["ctrl-a_m0"].zvol.size_bytes == 384 << 20


def test_more_disks_than_a_lab_takes_is_refused(paper_data):
    data = copy.deepcopy(paper_data)
    for i in range(rules.MAX_DISKS + 1 - len(data["disks"])):
        data["disks"][f"x{i}"] = {"role": "cache", "bus": "sas", "size_mb": 64}
    assert f"disks declares {rules.MAX_DISKS + 1} disks; use at most {rules.MAX_DISKS} shared disks" in refused(data)


def test_disks_adding_up_to_more_than_a_host_holds_are_refused(paper_data):
    data = copy.deepcopy(paper_data)
    for name in ("d00", "d01", "d10"):
        data["disks"][name]["size_mb"] = 400_000
    text = refused(data)
    assert ("disks add up to 1200768 MB, more than the 1048576 MB (1 TiB) a lab's fully allocated shared disks "
            "may take on the host; use fewer or smaller disks") in text


def test_the_vagrantfiles_entry_point_refuses_the_hosts_address_too(paper_data, tmp_path, capsys):
    """`vagrant up` reads the lab through python3 -m lab.providers.virtualbox, not through bst."""
    from lab.providers.virtualbox.__main__ import main

    text = default_topology_path().read_text().replace('public = "192.168.55.10"', 'public = "192.168.55.1"')
    (tmp_path / "lab.toml").write_text(text)
    assert main(["--topology", str(tmp_path / "lab.toml"), "--lab-dir", str(tmp_path / "lab"), "export-json"]) == 2
    error = capsys.readouterr().err
    assert "hosts.ctrl-a.addresses.public 192.168.55.1 is the address VirtualBox gives the host" in error
