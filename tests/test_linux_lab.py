"""The Linux stack on a real 3-VM qemu lab: provision it, look at every layer, provision again (all skipped),
then snapshot it: save, break it, restore, and find it provisioned and healthy again; remove it and restore.

One lab for both halves (one boot and one provisioning, about 8 min under TCG); run with
``pytest -m vm tests/test_linux_lab.py``. The lab lives in a temporary directory of its own and is removed at
the end. The tests run in file order: the provisioning checks before the snapshot tests change the lab.
"""

from __future__ import annotations

import time
import uuid

import pytest

from lab.executor import Status
from lab.guests import sync_clocks
from lab.labdir import processes_of
from lab.plan import Plan
from lab.providers.base import HostState
from lab.providers.qemu import QemuProvider
from lab.providers.snapshot import SnapshotError
from lab.session import LabSession
from lab.stacks.linux import LinuxStack
from lab.topology import load_topology

pytestmark = pytest.mark.vm

HEALTHY_WITHIN_S = 120.0


def guest_image():
    from lab.images import default_cache_dir
    from lab.images.debian import cached_image, debian_recipe_hash, image_dir_for

    recipe_hash = debian_recipe_hash()
    image = cached_image(image_dir_for(default_cache_dir(), recipe_hash), recipe_hash)
    if image is None:
        pytest.skip("no cached Debian guest image (nox -s lab-up builds it)")
    return image


@pytest.fixture(scope="module")
def provision_plan() -> Plan:
    return LinuxStack().provision(load_topology())


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory, provision_plan):
    """The lab and the outcomes of its first provisioning."""
    topo = load_topology()
    provider = QemuProvider(topo, lab_dir=tmp_path_factory.mktemp("linuxlab") / "beast", image=guest_image())
    lab = LabSession(topo, provider, LinuxStack())
    try:
        provider.up()
        yield lab, lab.apply(provision_plan, "provision")
    finally:
        for host in topo.hosts:
            lab.forget(host)
        provider.down()
        assert processes_of(provider.lab_dir) == []


@pytest.fixture(scope="module")
def session(provisioned) -> LabSession:
    lab, outcomes = provisioned
    failed = [f"{o.host}/{o.step}: {o.error}" for o in outcomes if o.status is Status.FAILED]
    assert not failed, failed
    return lab


def out(lab: LabSession, host: str, cmd: str, timeout: float = 60) -> str:
    result = lab.run(host, cmd, timeout)
    assert result.exit_code == 0, f"{host}: `{cmd}` exited {result.exit_code}: {result.stderr.strip()}"
    return result.stdout


def problems(lab: LabSession) -> list[str]:
    """What is not as provisioning left it: pools, client paths and sessions, the mounted filesystem, I/O."""
    topo, stack = lab.topo, lab.stack
    found = []
    for controller in topo.controllers:
        result = lab.run(controller.name, "zpool list -H -o name,health", 60)
        pools = dict(line.split("\t") for line in result.stdout.splitlines() if "\t" in line)
        for pool in topo.pools:
            if pools.get(pool) != "ONLINE":
                found.append(f"{pool} is {pools.get(pool, 'not imported')} on {controller.name}")
    client = topo.client.host
    fact = stack.client_paths_fact(topo)
    result = lab.run(client, fact.command, 60)
    paths = fact.read(result.stdout) if result.exit_code == 0 else {}
    for multipath in topo.client.multipaths:
        states = paths.get(multipath.name, {})
        live = [p for p, s in states.items() if s != "failed"]
        if len(live) != 2:
            found.append(f"client multipath {multipath.name} has {len(live)} live paths: {states}")
    sessions = lab.run(client, "iscsiadm -m session -P 1", 60).stdout
    logged_in = sessions.count("iSCSI Session State: LOGGED_IN")
    if logged_in != len(topo.controllers):
        found.append(f"client has {logged_in} logged-in iSCSI sessions, not {len(topo.controllers)}")
    mountpoint = topo.client.mountpoint
    if lab.run(client, f"mountpoint -q {mountpoint}", 30).exit_code != 0:
        found.append(f"{mountpoint} is not mounted on {client}")
    elif lab.run(client, f"dd if=/dev/urandom of={mountpoint}/.io bs=64k count=16 conv=fsync status=none "
                         f"&& rm {mountpoint}/.io", 120).exit_code != 0:
        found.append(f"writing to {mountpoint} on {client} failed")
    return found


def wait_healthy(lab: LabSession) -> tuple[float, list[str]]:
    """Seconds until ``problems`` is empty and what the first look found; fails with the last problems
    after HEALTHY_WITHIN_S."""
    started = time.monotonic()
    first: list[str] | None = None
    while True:
        found = problems(lab)
        first = found if first is None else first
        if not found:
            return time.monotonic() - started, first
        if time.monotonic() - started > HEALTHY_WITHIN_S:
            pytest.fail(f"not healthy {HEALTHY_WITHIN_S:.0f} s after the restore: {'; '.join(found)}")
        time.sleep(3)


def forget_all(lab: LabSession) -> None:
    for host in lab.topo.hosts:
        lab.forget(host)


def test_provision_runs_every_step(provisioned):
    _, outcomes = provisioned
    assert not [f"{o.host}/{o.step}: {o.error}" for o in outcomes if o.status is Status.FAILED]


def test_both_pools_online_on_both_controllers(session: LabSession):
    topo = session.topo
    for host in topo.controllers:
        listing = out(session, host.name, "zpool list -H -o name,health")
        assert sorted(listing.split("\n")[:-1]) == [f"{pool}\tONLINE" for pool in sorted(topo.pools)]


def test_cross_import_was_refused_without_f(session: LabSession):
    topo = session.topo
    for host in topo.controllers:
        peer_pool = topo.pool_of(topo.peer(host.name).name).name
        refusal = out(session, host.name, f"cat /var/lib/beast/import-refusal-{peer_pool}.txt")
        assert "previously in use from another system" in refusal


def test_iscsi_sessions_logged_in(session: LabSession):
    topo = session.topo
    for host in topo.controllers:
        sessions = out(session, host.name, LinuxStack().sessions_command())
        assert f"{topo.peer(host.name).address('private')}:3260,1 {topo.iscsi.private_target}" in sessions
    client_sessions = out(session, topo.client.host, "iscsiadm -m session")
    for host in topo.controllers:
        assert f"{host.address('public')}:3260,1 {topo.iscsi.public_target}" in client_sessions


def test_arbitrator_maps_have_two_usable_paths(session: LabSession):
    from lab.parsers.multipath import parse_dmsetup_status

    topo = session.topo
    for host in topo.controllers:
        name = topo.pool_of(topo.peer(host.name).name).arbitrator
        (status,) = parse_dmsetup_status(out(session, host.name, f"dmsetup status {name}"))
        assert len(status.paths) == 2 and all(path.active for path in status.paths)
        assert status.next_group == 1


def test_client_maps_stripe_and_writable_mount(session: LabSession):
    topo, stack = session.topo, session.stack
    client = topo.client.host
    fact = stack.client_paths_fact(topo)
    paths = fact.read(out(session, client, fact.command))
    for multipath in topo.client.multipaths:
        assert sorted(paths[multipath.name].values()) == ["active", "standby"]
    assert "active raid0" in out(session, client, "cat /proc/mdstat")
    mountpoint = topo.client.mountpoint
    out(session, client, f"head -c 4194304 /dev/urandom > {mountpoint}/probe && sync", 120)
    written = out(session, client, stack.md5_command(f"{mountpoint}/probe"))
    out(session, client, f"umount {mountpoint} && mount /dev/md/{topo.client.stripe} {mountpoint}", 120)
    assert out(session, client, stack.md5_command(f"{mountpoint}/probe")) == written


def test_second_apply_skips_every_step(session: LabSession, provision_plan):
    second = session.apply(provision_plan, "provision-again")
    assert [(o.host, o.step) for o in second if o.status is not Status.SKIPPED] == []


def test_provisioned_lab_is_healthy(session: LabSession):
    assert problems(session) == []


def test_a_failed_save_continues_the_lab_and_leaves_no_snapshot(session: LabSession, monkeypatch):
    import lab.providers.snapshot as shared

    provider = session.provider

    def broken_copy(source, target, allocated):
        raise SnapshotError(f"could not copy {source}: injected by the test")

    monkeypatch.setattr(shared, "copy_file", broken_copy)
    with pytest.raises(SnapshotError, match="injected by the test"):
        provider.snapshot_save("broken")
    monkeypatch.undo()
    assert {s.name: s.state for s in provider.status()} == {h: HostState.RUNNING for h in session.topo.hosts}
    assert list((provider.lab_dir / "snapshots").iterdir()) == []
    assert problems(session) == []


def test_restore_undoes_everything_done_after_the_save(session: LabSession):
    provider, topo = session.provider, session.topo
    manifest = provider.snapshot_save("provisioned")
    print(f"\nsave: {manifest.timings}, {manifest.size_bytes / 2**30:.2f} GiB")
    directory = provider.lab_dir / "snapshots" / "provisioned"
    assert sorted(p.name for p in directory.glob("*.state")) == sorted(f"{h}.state" for h in topo.hosts)
    for disk in topo.disks.values():
        raw = (directory / "disks" / f"{disk.name}.raw").stat()
        assert raw.st_size == disk.size_mb * 2**20
        assert raw.st_blocks * 512 >= raw.st_size, f"{disk.name} copy is sparse"
    assert manifest.timings["stop_spread_s"] < 1.0
    assert {s.name: s.state for s in provider.status()} == {h: HostState.RUNNING for h in topo.hosts}
    assert [m.name for m in provider.snapshots()] == ["provisioned"]

    client, ctrl_a = topo.client.host, topo.controllers[0].name
    marker = f"{topo.client.mountpoint}/after-save-{uuid.uuid4().hex[:8]}"
    dataset = f"{topo.pool_of(ctrl_a).name}/after-save"
    out(session, client, f"echo written after the save > {marker} && sync")
    out(session, ctrl_a, f"zfs create {dataset}")
    out(session, client, "iscsiadm -m node -u")
    assert problems(session), "breaking the lab did not show"

    timings = provider.snapshot_restore("provisioned")
    print(f"restore: {timings}")
    forget_all(session)
    clocks = sync_clocks(provider, session.stack, list(topo.hosts))
    print(f"guest clocks as found after the restore: {clocks}")
    assert all(clocks.values()), f"a guest's clock could not be read: {clocks}"
    healthy_after, first = wait_healthy(session)
    print(f"healthy {healthy_after:.1f} s after the restore returned; first look: {first or 'healthy'}")
    kernel = out(session, client, "dmesg | grep -iE 'iscsi|connection|device-mapper' | tail -n 12")
    print(f"client's last kernel messages about iSCSI and device-mapper:\n{kernel}")
    assert session.run(client, f"test -e {marker}", 30).exit_code == 1
    assert dataset not in out(session, ctrl_a, "zfs list -H -o name")
    for host in topo.hosts:
        offset = time.time() - float(out(session, host, "date +%s.%N"))
        assert abs(offset) < 5, f"{host}'s clock is {offset:.1f} s behind the host's"
    state = provider.load_state()
    assert state["restored_from"]["snapshot"] == "provisioned"


def test_restore_brings_back_a_lab_that_was_removed(session: LabSession):
    provider, topo = session.provider, session.topo
    forget_all(session)
    provider.down()
    assert processes_of(provider.lab_dir) == []
    assert [m.name for m in provider.snapshots()] == ["provisioned"]
    timings = provider.snapshot_restore("provisioned")
    print(f"\nrestore of a removed lab: {timings}")
    healthy_after, first = wait_healthy(session)
    print(f"healthy {healthy_after:.1f} s after the restore returned; first look: {first or 'healthy'}")
    assert {s.name: s.state for s in provider.status()} == {h: HostState.RUNNING for h in topo.hosts}
