"""The Linux stack on a real 3-VM qemu lab: provision, look at every layer, provision again (all skipped).

Slow (about 4 min to boot under TCG, 4 min to provision); run with ``pytest -m vm tests/test_linux_lab.py``.
The lab lives in its own directory so it cannot collide with a lab someone else has up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.executor import FabricRunner, Status, apply_plan
from lab.plan import Plan
from lab.stacks.linux import LinuxStack
from lab.topology import Topology, load_topology

pytestmark = pytest.mark.vm

LAB_DIR = Path(os.environ.get("BEAST_LINUX_LAB_DIR", "/tmp/beast-linux-lab-test"))


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology()


@pytest.fixture(scope="module")
def runners(topo) -> Iterator[dict[str, FabricRunner]]:
    from lab import remote
    from lab.providers.qemu import QemuProvider

    provider = QemuProvider(topo, lab_dir=LAB_DIR)
    try:
        provider.up()
        yield {
            host: FabricRunner(remote.connect(provider.ssh_target(host), timeout=30), host=host) for host in topo.hosts
        }
    finally:
        provider.down()


@pytest.fixture(scope="module")
def provision_plan(topo) -> Plan:
    return LinuxStack().provision(topo)


@pytest.fixture(scope="module")
def first_apply(provision_plan, runners):
    return apply_plan(provision_plan, runners, label="provision")


def output(runner: FabricRunner, cmd: str) -> str:
    result = runner.run(cmd, 120)
    assert result.exit_code == 0, f"`{cmd}` exited {result.exit_code}: {result.stderr}"
    return result.stdout


def test_provision_runs_every_step(first_apply):
    assert not [o for o in first_apply if o.status is Status.FAILED]


def test_both_pools_online_on_both_controllers(first_apply, runners, topo):
    for host in topo.controllers:
        listing = output(runners[host.name], "zpool list -H -o name,health")
        assert sorted(listing.split("\n")[:-1]) == [f"{pool}\tONLINE" for pool in sorted(topo.pools)]


def test_cross_import_was_refused_without_f(first_apply, runners, topo):
    for host in topo.controllers:
        peer_pool = topo.pool_of(topo.peer(host.name).name).name
        refusal = output(runners[host.name], f"cat /var/lib/beast/import-refusal-{peer_pool}.txt")
        assert "previously in use from another system" in refusal


def test_iscsi_sessions_logged_in(first_apply, runners, topo):
    for host in topo.controllers:
        sessions = output(runners[host.name], LinuxStack().sessions_command())
        assert f"{topo.peer(host.name).address('private')}:3260,1 {topo.iscsi.private_target}" in sessions
    client_sessions = output(runners[topo.client.host], "iscsiadm -m session")
    for host in topo.controllers:
        assert f"{host.address('public')}:3260,1 {topo.iscsi.public_target}" in client_sessions


def test_arbitrator_maps_have_two_usable_paths(first_apply, runners, topo):
    from lab.parsers.multipath import parse_dmsetup_status

    for host in topo.controllers:
        name = topo.pool_of(topo.peer(host.name).name).arbitrator
        (status,) = parse_dmsetup_status(output(runners[host.name], f"dmsetup status {name}"))
        assert len(status.paths) == 2 and all(path.active for path in status.paths)
        assert status.next_group == 1


def test_client_maps_stripe_and_writable_mount(first_apply, runners, topo):
    stack = LinuxStack()
    client = runners[topo.client.host]
    fact = stack.client_paths_fact(topo)
    paths = fact.read(output(client, fact.command))
    for multipath in topo.client.multipaths:
        assert sorted(paths[multipath.name].values()) == ["active", "standby"]
    assert "active raid0" in output(client, "cat /proc/mdstat")
    mountpoint = topo.client.mountpoint
    output(client, f"head -c 4194304 /dev/urandom > {mountpoint}/probe && sync")
    written = output(client, stack.md5_command(f"{mountpoint}/probe"))
    output(client, f"umount {mountpoint} && mount /dev/md/{topo.client.stripe} {mountpoint}")
    assert output(client, stack.md5_command(f"{mountpoint}/probe")) == written


def test_second_apply_skips_every_step(first_apply, provision_plan, runners):
    second = apply_plan(provision_plan, runners, label="provision-again")
    assert [(o.host, o.step) for o in second if o.status is not Status.SKIPPED] == []
