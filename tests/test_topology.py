"""The paper's table loads as the default lab; every kind of bad topology fails with one clear line."""

from __future__ import annotations

import copy
import ipaddress
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.errors import TopologyError
from lab.topology import Bus, DiskRole, Role, default_topology_path, load_topology, topology_from_dict


@pytest.fixture(scope="module")
def paper_data() -> dict:
    return tomllib.loads(default_topology_path().read_text())


def test_default_topology_is_the_papers_table():
    topo = load_topology()
    assert [h.name for h in topo.controllers] == ["ctrl-a", "ctrl-b"]
    assert topo.hosts["ctrl-a"].address("private") == "192.168.56.10"
    assert topo.hosts["ctrl-a"].address("public") == "192.168.55.10"
    assert topo.hosts["ctrl-b"].address("private") == "192.168.56.11"
    assert topo.hosts["ctrl-b"].address("public") == "192.168.55.11"
    assert topo.client_host.address("public") == "192.168.55.20"
    assert topo.client_host.role is Role.CLIENT and topo.client_host.memory_mb >= 512
    assert all(h.memory_mb >= 2048 for h in topo.controllers)
    assert topo.networks["private"].cidr == ipaddress.IPv4Network("192.168.56.0/24")
    assert [d.name for d in topo.disks_on(Bus.SATA)] == ["d00", "d01", "d10", "d11"]
    assert [d.name for d in topo.disks_on(Bus.SAS)] == ["f00", "f01", "f10", "f11"]
    assert all(not d.rotational for d in topo.disks.values() if d.role is DiskRole.CACHE)
    a = topo.pool_of("ctrl-a")
    assert (a.name, a.data, a.log, a.cache) == ("ctrl-a_m0", ("d00", "d01"), "f00", "f01")
    b = topo.pool_of("ctrl-b")
    assert (b.name, b.data, b.log, b.cache) == ("ctrl-b_m0", ("d10", "d11"), "f10", "f11")
    assert a.zvol_path == "ctrl-a_m0/v0" and a.zvol.size_bytes == 120 << 20
    assert a.properties == {"sync": "always", "primarycache": "none", "secondarycache": "all"}
    assert a.failmode == b.failmode == "continue"
    assert (a.arbitrator, b.arbitrator) == ("CTRL_A_BACK", "CTRL_B_BACK")
    assert topo.iscsi.private_target == "iqn.2016-01.local.sss.private:target0"
    assert topo.iscsi.public_target == "iqn.2016-01.local.sss.public:target0"
    assert [(m.name, m.pool) for m in topo.client.multipaths] == [("CTRL_A", "ctrl-a_m0"), ("CTRL_B", "ctrl-b_m0")]
    assert (topo.client.stripe, topo.client.mountpoint) == ("ZDATA", "/storage")
    assert topo.peer("ctrl-a").name == "ctrl-b"


def mutate(data: dict, path: str, value) -> dict:
    """Copy of ``data`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(data)
    *parents, last = path.split("/")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


BAD_TOPOLOGIES = [
    ("unknown disk in a pool", "pools/ctrl-a_m0/data", ["d00", "d99"],
     "pools.ctrl-a_m0.data names unknown disk 'd99'; use one of d00, d01"),
    ("a pool using a disk twice", "pools/ctrl-a_m0/data", ["d00", "d00"],
     "pools.ctrl-a_m0.data disk 'd00' is already used by pools.ctrl-a_m0.data; give every pool member its own disk"),
    ("two pools sharing a disk", "pools/ctrl-b_m0/data", ["d10", "d01"],
     "pools.ctrl-b_m0.data disk 'd01' is already used by pools.ctrl-a_m0.data"),
    ("overlapping IPs", "hosts/ctrl-b/addresses/public", "192.168.55.10",
     "hosts.ctrl-b.addresses.public 192.168.55.10 is already used by hosts.ctrl-a.addresses.public"),
    ("address outside its network", "hosts/ctrl-a/addresses/private", "192.168.57.10",
     "hosts.ctrl-a.addresses.private 192.168.57.10 is not a host address of private (192.168.56.0/24); "
     "pick an address inside 192.168.56.0/24"),
    ("network address as host address", "hosts/clnt-1/addresses/public", "192.168.55.0",
     "is not a host address of public"),
    ("data disk below the paper's minimum", "disks/d00/size_mb", 99,
     "disks.d00.size_mb 99 is below the paper's minimum for a data disk; use 100 or more"),
    ("cache disk below the paper's minimum", "disks/f01/size_mb", 32,
     "disks.f01.size_mb 32 is below the paper's minimum for a cache disk; use 64 or more"),
    ("controller memory below 2048", "hosts/ctrl-a/memory_mb", 1024,
     "hosts.ctrl-a.memory_mb 1024 is below the paper's minimum for a controller; use 2048 or more"),
    ("client memory below 512", "hosts/clnt-1/memory_mb", 256, "use 512 or more"),
    ("duplicate device names", "client/multipaths/1/name", "CTRL_A",
     "client.multipaths[1].name 'CTRL_A' is already used by client.multipaths[0].name"),
    ("arbitrator named like a client multipath", "pools/ctrl-a_m0/arbitrator", "CTRL_B",
     "client.multipaths[1].name 'CTRL_B' is already used by pools.ctrl-a_m0.arbitrator"),
    ("misspelt field", "hosts/ctrl-a/memroy_mb", 4096,
     "hosts.ctrl-a.memroy_mb is not a known field; remove it or check its spelling"),
    ("missing field", "pools/ctrl-a_m0/owner", ...,
     "pools.ctrl-a_m0.owner is missing; add owner = ... to [pools.ctrl-a_m0]"),
    ("wrong type", "hosts/ctrl-a/memory_mb", "2048", "hosts.ctrl-a.memory_mb must be an integer, not a string"),
    ("boolean for a number", "disks/d00/size_mb", True, "disks.d00.size_mb must be an integer, not a boolean"),
    ("invalid CIDR", "networks/public/cidr", "192.168.55.1/24",
     "networks.public.cidr '192.168.55.1/24' is not an IPv4"),
    ("overlapping networks", "networks/public/cidr", "192.168.56.128/25", "overlaps network 'private'"),
    ("unknown network", "hosts/clnt-1/addresses/storage", "10.9.9.9",
     "hosts.clnt-1.addresses.storage names unknown network 'storage'; use one of private, public"),
    ("controller without a private address", "hosts/ctrl-b/addresses/private", ...,
     "hosts.ctrl-b.addresses.private is missing; a controller needs an address on the private network"),
    ("pool owned by the client", "pools/ctrl-a_m0/owner", "clnt-1",
     "pools.ctrl-a_m0.owner 'clnt-1' is not a controller"),
    ("cache disk used as data", "pools/ctrl-a_m0/data", ["d00", "f11"],
     "pools.ctrl-a_m0.data disk 'f11' is a cache disk; use a data disk"),
    ("bad zvol size", "pools/ctrl-a_m0/zvol/size", "120 MB", "pools.ctrl-a_m0.zvol.size '120 MB' is not a size"),
    ("bad iqn", "iscsi/public_target", "target0", "iscsi.public_target 'target0' is not an iSCSI qualified name"),
    ("bad failmode", "pools/ctrl-b_m0/failmode", "ignore", "pools.ctrl-b_m0.failmode 'ignore' is not a failmode"),
    ("bad zfs property value", "pools/ctrl-a_m0/properties/sync", "sometimes",
     "pools.ctrl-a_m0.properties.sync 'sometimes' is not a valid value; use one of standard, always, disabled"),
    ("unknown provider", "lab/provider", "vmware", "lab.provider 'vmware' is not a provider"),
    ("unknown arbitrator mode", "lab/arbitrator", "stonith",
     "lab.arbitrator 'stonith' is not an arbitrator mode; use one of paper, takeover"),
    ("arbitrator mode not a string", "lab/arbitrator", True, "lab.arbitrator must be a string, not a boolean"),
    ("bad disk bus", "disks/f00/bus", "scsi", "disks.f00.bus 'scsi' is not a bus; use sata or sas"),
    ("multipath for an unknown pool", "client/multipaths/0/pool", "ctrl-c_m0",
     "client.multipaths[0].pool names unknown pool 'ctrl-c_m0'"),
    ("relative mount point", "client/mountpoint", "storage", "client.mountpoint 'storage' is not an absolute path"),
]


@pytest.mark.parametrize(("case", "path", "value", "message"), BAD_TOPOLOGIES, ids=[c[0] for c in BAD_TOPOLOGIES])
def test_bad_topology_fails_with_one_line_naming_the_field(paper_data, case, path, value, message):
    with pytest.raises(TopologyError) as err:
        topology_from_dict(mutate(paper_data, path, value), source="t.toml")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("topology t.toml: ")
    assert message in text


def test_three_controllers_are_refused(paper_data):
    data = mutate(paper_data, "hosts/ctrl-c", {"role": "controller", "memory_mb": 2048,
                                                "addresses": {"private": "192.168.56.12", "public": "192.168.55.12"}})
    with pytest.raises(TopologyError, match="has 3 controllers; the BeaST is a dual-controller system"):
        topology_from_dict(data)


def test_missing_file_and_bad_toml_are_one_line(tmp_path):
    with pytest.raises(TopologyError, match=r"does not exist; pass an existing file with --topology$"):
        load_topology(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[hosts.ctrl-a]\nrole = \n")
    with pytest.raises(TopologyError, match=r"not valid TOML \(.*line 2.*\); fix the syntax there"):
        load_topology(bad)
    dup = tmp_path / "dup.toml"
    dup.write_text("[disks.d00]\nrole='data'\n[disks.d00]\nrole='data'\n")
    with pytest.raises(TopologyError, match="not valid TOML"):
        load_topology(dup)


def test_users_point_at_their_own_file(tmp_path, paper_data):
    text = default_topology_path().read_text().replace("192.168.55.20", "192.168.55.42")
    own = tmp_path / "mine.toml"
    own.write_text(text)
    topo = load_topology(own)
    assert topo.client_host.address("public") == "192.168.55.42"
    assert topo.source == str(own)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, str(i)))
    yield prefix


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 1 << 21), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["192.168.56.10", "192.168.55.99", "d00", "f00", "ctrl-a", "ctrl-b_m0",
                                           "10.0.0.0/8", "120M", "0M", "always", "controller", "client", "sata"]),
    st.lists(st.sampled_from(["d00", "d01", "d10", "d11", "f00", "x"]), max_size=4), st.just(...),
    st.dictionaries(st.sampled_from(["a", "role", "cidr", "name"]), st.text(max_size=5), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_topologies_validate_or_fail_in_one_line(paper_data, data):
    paths = sorted({"/".join(p) for p in _paths(paper_data) if p})
    mutated = paper_data
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = data.draw(_values)
        try:
            mutated = mutate(mutated, path, None if value is None else value)
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    if any(v is None for v in _leaves(mutated)):
        mutated = _drop_none(mutated)
    try:
        topo = topology_from_dict(mutated)
    except TopologyError as err:
        assert "\n" not in str(err) and str(err).startswith("topology <dict>: ")
    else:
        assert len(topo.controllers) == 2


def _leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v)
    else:
        yield node


def _drop_none(node):
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node if v is not None]
    return node


def test_arbitrator_mode_defaults_to_the_papers_and_takes_takeover(paper_data):
    assert load_topology().lab.arbitrator == "paper"
    assert topology_from_dict(mutate(paper_data, "lab/arbitrator", ...)).lab.arbitrator == "paper"
    assert topology_from_dict(mutate(paper_data, "lab/arbitrator", "takeover")).lab.arbitrator == "takeover"
    assert 'arbitrator = "paper"' in default_topology_path().read_text()
