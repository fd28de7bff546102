"""The paper's own stack: FreeBSD 10.3 with ZFS, ctld(8), iscsictl(8), gmultipath(8) and gstripe(8).

Every command the paper prints is here in the paper's order, derived from the topology (host, pool,
device and target names are never written into the recipe). What the paper leaves implicit is added
and named: bringing rc.conf settings up without a reboot, a ``check`` per step so that applying a plan
twice changes nothing, and ``verify`` commands that wait for what the paper reads off ``dmesg``.
"""

from __future__ import annotations

from lab.errors import LabError
from lab.plan import Plan, Step
from lab.stacks.base import RecoveryStage, Stack, Stage
from lab.stacks.checks import pool_imported, property_is, vdev_in, wait_until
from lab.stacks.freebsd.devices import (
    arbitrator_disk,
    client_disk,
    ctld_serves,
    disk_device,
    disk_is,
    multipath_healthy,
    nic,
    session_connected,
    session_disk,
    session_exists,
)
from lab.stacks.freebsd.faults import FreeBSDFaults
from lab.stacks.freebsd.files import (
    CTL_CONF,
    HOSTID_FILE,
    RC_CONF,
    SYSCTL_CONF,
    SYSCTLS,
    full_ctl_conf,
    private_ctl_conf,
    rc_conf,
    shared_hostuuid,
    sysctl_conf,
    sysctl_conf_merge,
    zvol_device,
)
from lab.stacks.freebsd.queries import FreeBSDQueries
from lab.stacks.hardware import FREEBSD_HARDWARE
from lab.stacks.shell import dquote, quote, words
from lab.topology import Host, Pool, Role, Topology
from lab.wire import through_csh

EXPORTED_AT = "/var/db/beast-recovery-exported"
"""When recovery exported the pools (epoch seconds): the reboot is done once the host booted later."""

IMPORTED_AT = "/var/db/beast-recovery-imported"
"""When recovery imported the pools again: a later export in the same boot would undo the recovery."""

BOOT_TIME = "sysctl -n kern.boottime | sed 's/^{ sec = \\([0-9]*\\),.*/\\1/'"


class FreeBSDStack(FreeBSDQueries, FreeBSDFaults, Stack):
    """The paper's commands as plans; see the module docstring for what is added to them."""

    name = "freebsd"
    hardware = FREEBSD_HARDWARE
    client_workload = "probe"
    """FreeBSD 10.3 has no fio in base (and the paper installs no packages): the client's dd probe."""

    def clock_read_command(self) -> str:
        """FreeBSD's date(1) has no %N: whole seconds."""
        return "date +%s"

    def clock_set_command(self, epoch: float) -> str:
        """date(1) -f parses the new date with strptime(3), whose %s is seconds since the epoch."""
        return f"date -u -f %s {int(epoch)} >/dev/null"

    def wire(self, cmd: str) -> str:
        """Root's login shell is the paper's /bin/csh: every command goes to /bin/sh through it intact."""
        return through_csh(cmd)

    def check_arbitrator(self, topo: Topology) -> None:
        """Only the paper's arbitrator: the takeover mode relies on OpenZFS multihost, which FreeBSD 10.3's
        ZFS lacks, so nothing would stop both controllers writing one pool."""
        if topo.lab.arbitrator != "paper":
            raise LabError(
                f'the freebsd stack cannot run arbitrator = "{topo.lab.arbitrator}": FreeBSD 10.3\'s ZFS has no '
                "multihost property to keep a pool from being imported on both controllers; "
                f'set [lab] arbitrator = "paper" in {topo.source or "the topology"} or use the linux stack')

    def provision(self, topo: Topology) -> Plan:
        self.check_arbitrator(topo)
        plan: Plan = {host.name: self.base_steps(topo, host) for host in topo.controllers}
        plan[topo.client.host] = self.base_steps(topo, topo.client_host)
        for host in topo.controllers:
            plan[host.name] += [
                *self.pool_steps(topo, host),
                *self.cross_import_steps(topo, host),
                self.private_target_step(topo, host, Stage.PRIVATE_TARGET),
                self.arbitrator_login_step(topo, host, Stage.ARBITRATOR),
                self.arbitrator_multipath_step(topo, host, Stage.ARBITRATOR),
                self.public_target_step(topo, host, Stage.PUBLIC_TARGET),
            ]
        plan[topo.client.host] += self.client_steps(topo)
        return plan

    def recovery(self, topo: Topology, failed: str) -> Plan:
        """The paper's prose after the failed controller was booted again: export, reboot, import, scrub,
        clear, then the arbitrator, the public target and the client's paths once more."""
        self.check_arbitrator(topo)
        survivor = self.survivor_of(topo, failed, "recover")
        names = [h.name for h in topo.controllers]
        host = topo.hosts[failed]
        pools = [topo.pool_of(name).name for name in names]
        plan: Plan = {failed: [], survivor.name: [], topo.client.host: []}
        plan[failed] += [
            self.export_step(pools),
            self.reboot_step(),
            *self.sysctl_steps(RecoveryStage.IMPORT),
            self.import_step(pools),
            *[self.scrub_step(pool, RecoveryStage.SCRUB_ON_FAILED) for pool in pools],
        ]
        plan[survivor.name] += [self.scrub_step(pool, RecoveryStage.SCRUB_ON_SURVIVOR) for pool in pools]
        for name in (failed, survivor.name):
            plan[name] += [self.clear_step(pool) for pool in pools]
        plan[failed] += [
            self.ctld_restart_step(topo, host),
            self.arbitrator_login_step(topo, host, RecoveryStage.ARBITRATOR),
            self.arbitrator_multipath_step(topo, host, RecoveryStage.ARBITRATOR),
            self.public_target_step(topo, host, RecoveryStage.PUBLIC_TARGET),
        ]
        plan[survivor.name] += self.survivor_arbitrator_steps(topo, host, survivor)
        plan[topo.client.host] += self.client_recovery_steps(topo, host)
        return plan

    # Provisioning, in the paper's order.

    def base_steps(self, topo: Topology, host: Host) -> list[Step]:
        """rc.conf and sysctl.conf, then what a reboot would bring up, brought up now."""
        steps = [
            Step("rc.conf", files={RC_CONF: rc_conf(topo, host)}),
            Step("sysctl.conf", commands=tuple(sysctl_conf_merge(n, v) for n, v in SYSCTLS.items()),
                 check=" && ".join(f"grep -qxF '{line}' {SYSCTL_CONF}" for line in sysctl_conf().splitlines())),
            Step("hostname", commands=(f"hostname {quote(host.name)}",),
                 check=f'[ "$(hostname)" = {dquote(host.name)} ]'),
        ]
        for index, address in enumerate(host.addresses.values()):
            check = f"ifconfig {nic(index)} | grep -q 'inet {address} '"
            steps.append(Step(f"network {nic(index)}", commands=(f"service netif start {nic(index)}",),
                              check=check, verify=check))
        steps.append(Step("iscsid", commands=("service iscsid start",), check="service iscsid status"))
        steps += self.sysctl_steps(Stage.BASE)
        if host.role is Role.CONTROLLER:
            steps.append(self.hostid_step(topo))
        return steps

    def hostid_step(self, topo: Topology) -> Step:
        """Both controllers share one hostid, as the paper's cloned VMs did: ZFS then lets each import the
        other's pool without -f (it refuses a pool last used under another hostid and not exported), so the
        paper's ``zpool import -N`` runs verbatim. Each VM of the box would otherwise take its own."""
        hostuuid = shared_hostuuid(topo)
        return Step("hostid", files={HOSTID_FILE: f"{hostuuid}\n"}, commands=("service hostid start",),
                    check=f'[ "$(sysctl -n kern.hostuuid)" = "{hostuuid}" ]', stage=Stage.BASE)

    def shared_disks_step(self, topo: Topology) -> Step:
        """Before any pool is made: adaN and daN are the shared disks the plan names, by serial (the paper
        read dmesg by eye). Fails naming each disk that is not the one the plan expects."""
        disks = [topo.disks[d] for d in topo.disks]
        matches = " && ".join(f"{{ {disk_is(topo, d.name)}; }}" for d in disks)
        checks = []
        for d in disks:
            device = disk_device(topo, d.name)
            said = dquote(f"{device} is not the shared {d.bus.value.upper()} disk {d.name} (serial {d.serial}, "
                          f"{d.size_mb} MiB): its serial is ")[:-1] + '${i:-none}"'
            checks.append(f"{{ {disk_is(topo, d.name)}; }} || {{ echo {said} >&2; bad=1; }}")
        report = "; ".join(checks)
        return Step("shared disks", commands=(f"bad=0; {report}; [ $bad -eq 0 ]",), check=matches,
                    stage=Stage.POOLS)

    def sysctl_steps(self, stage: int) -> list[Step]:
        """Applied after iscsid, which loads the iscsi module that owns the variable."""
        return [
            Step(f"sysctl {name}", commands=(f"sysctl {name}={value}",),
                 check=f'[ "$(sysctl -n {name} 2>/dev/null)" = "{value}" ]', stage=stage)
            for name, value in SYSCTLS.items()
        ]

    def pool_steps(self, topo: Topology, host: Host) -> list[Step]:
        pool = topo.pool_of(host.name)
        data = words(*(f"/dev/{disk_device(topo, d)}" for d in pool.data))
        log, cache = disk_device(topo, pool.log), disk_device(topo, pool.cache)
        steps = [
            self.shared_disks_step(topo),
            Step(f"zpool create {pool.name}", commands=(f"zpool create -m none {quote(pool.name)} {data}",),
                 check=pool_imported(pool.name),
                 verify=f"zpool list -H -o health {quote(pool.name)} | grep -qx ONLINE", stage=Stage.POOLS),
            Step(f"zfs create {pool.zvol_path}",
                 commands=(f"zfs create -V {words(pool.zvol.size, pool.zvol_path)}",),
                 check=f"zfs list -H -o name {quote(pool.zvol_path)} >/dev/null 2>&1", stage=Stage.POOLS),
            Step(f"log {pool.name} {log}", commands=(f"zpool add {words(pool.name, 'log', f'/dev/{log}')}",),
                 check=vdev_in(pool.name, "logs", log), stage=Stage.POOLS),
        ]
        write_properties = {k: v for k, v in pool.properties.items() if k == "sync"}
        read_properties = {k: v for k, v in pool.properties.items() if k != "sync"}
        steps += self.property_steps(pool, write_properties)
        steps.append(Step(f"cache {pool.name} {cache}",
                          commands=(f"zpool add {words(pool.name, 'cache', f'/dev/{cache}')}",),
                          check=vdev_in(pool.name, "cache", cache), stage=Stage.POOLS))
        steps += self.property_steps(pool, read_properties)
        return steps

    def property_steps(self, pool: Pool, properties: dict[str, str]) -> list[Step]:
        return [
            Step(f"{prop}={value} {pool.name}", commands=(f"zfs set {words(f'{prop}={value}', pool.name)}",),
                 check=property_is(pool.name, prop, value), stage=Stage.POOLS)
            for prop, value in properties.items()
        ]

    def cross_import_steps(self, topo: Topology, host: Host) -> list[Step]:
        """Both pools on both controllers, unmounted (-N), and kept running whatever errors they see."""
        peer_pool = topo.pool_of(topo.peer(host.name).name).name
        steps = [Step(f"import {peer_pool}", commands=(f"zpool import -N {quote(peer_pool)}",),
                      check=pool_imported(peer_pool), stage=Stage.CROSS_IMPORT)]
        for name in (topo.pool_of(h.name).name for h in topo.controllers):
            failmode = topo.pools[name].failmode
            steps.append(Step(f"failmode {name}", commands=(f"zpool set {words(f'failmode={failmode}', name)}",),
                              check=property_is(name, "failmode", failmode, command="zpool"),
                              stage=Stage.CROSS_IMPORT))
        return steps

    def private_target_step(self, topo: Topology, host: Host, stage: int) -> Step:
        """The paper's first, private-only ctl.conf is a stage the full one replaces, so it is written by a
        command (not as a plan file the executor would keep restoring) and skipped once ctld serves the zvol."""
        own = zvol_device(topo.pool_of(host.name))
        write = f"cat > {CTL_CONF} <<'EOF'\n{private_ctl_conf(topo, host)}EOF"
        return Step("ctl.conf private target", commands=(write, "service ctld restart"),
                    check=ctld_serves(own), verify=ctld_serves(own), stage=stage)

    def arbitrator_login_step(self, topo: Topology, host: Host, stage: int) -> Step:
        portal = topo.peer(host.name).address("private")
        iqn = topo.iscsi.private_target
        return Step(f"login {portal}", commands=(f"iscsictl -A -p {quote(portal)} -t {quote(iqn)}",),
                    check=session_exists(iqn, portal),
                    verify=wait_until(session_connected(iqn, portal, (arbitrator_disk(topo),))), stage=stage)

    def arbitrator_multipath_step(self, topo: Topology, host: Host, stage: int) -> Step:
        """Active path through the peer (its private LUN), passive path to the locally imported zvol."""
        peer_pool = topo.pool_of(topo.peer(host.name).name)
        name = peer_pool.arbitrator
        create = f"gmultipath create {words(name, f'/dev/{arbitrator_disk(topo)}', zvol_device(peer_pool))}"
        exists = f"gmultipath status {quote(name)} >/dev/null 2>&1"
        return Step(f"multipath {name}", commands=(create,), check=exists, verify=multipath_healthy(name),
                    stage=stage)

    def public_target_step(self, topo: Topology, host: Host, stage: int) -> Step:
        back = f"/dev/multipath/{topo.pool_of(topo.peer(host.name).name).arbitrator}"
        return Step("ctl.conf public target", commands=("killall -HUP ctld",),
                    files={CTL_CONF: full_ctl_conf(topo, host)},
                    check=ctld_serves(back), verify=wait_until(ctld_serves(back), 10), stage=stage)

    def client_steps(self, topo: Topology) -> list[Step]:
        iqn = topo.iscsi.public_target
        steps = []
        for host in topo.controllers:
            portal = host.address("public")
            disks = (client_disk(topo, host.name, 0), client_disk(topo, host.name, 1))
            steps.append(Step(f"login {portal}", commands=(f"iscsictl -A -p {quote(portal)} -t {quote(iqn)}",),
                              check=session_exists(iqn, portal),
                              verify=wait_until(session_connected(iqn, portal, disks)), stage=Stage.CLIENT))
        for multipath in topo.client.multipaths:
            owner = topo.pools[multipath.pool].owner
            active = client_disk(topo, owner, 0)
            passive = client_disk(topo, topo.peer(owner).name, 1)
            create = f"gmultipath create {words(multipath.name, f'/dev/{active}', f'/dev/{passive}')}"
            steps.append(Step(f"multipath {multipath.name}", commands=(create,),
                              check=f"gmultipath status {quote(multipath.name)} >/dev/null 2>&1",
                              verify=multipath_healthy(multipath.name), stage=Stage.CLIENT))
        stripe, mountpoint = topo.client.stripe, topo.client.mountpoint
        device = f"/dev/stripe/{stripe}"
        members = words(*(f"/dev/multipath/{m.name}" for m in topo.client.multipaths))
        mounted = f"mount | grep -q {quote(f'^{device} on {mountpoint} (')}"
        steps += [
            Step(f"stripe {stripe}", commands=(f"gstripe create {quote(stripe)} {members}",),
                 check=f"gstripe status {quote(stripe)} >/dev/null 2>&1", stage=Stage.CLIENT),
            Step(f"newfs {device}", commands=(f"newfs {quote(device)}",),
                 check=f"fstyp {quote(device)} 2>/dev/null | grep -qx ufs", stage=Stage.CLIENT),
            Step(f"mount {mountpoint}",
                 commands=(f"mkdir -p {quote(mountpoint)}", f"mount {words(device, mountpoint)}"),
                 check=mounted, verify=mounted, stage=Stage.CLIENT),
        ]
        return steps

    # Recovery.

    def export_step(self, pools: list[str]) -> Step:
        """Drop whatever the boot imported before it writes to the pools; done when no pool is imported,
        or when this boot's recovery already imported them again."""
        none_imported = " && ".join(f"! {pool_imported(p)}" for p in pools)
        recovered = f'[ -e {IMPORTED_AT} ] && [ "$(cat {IMPORTED_AT})" -ge "$({BOOT_TIME})" ]'
        return Step("export pools",
                    commands=(*(f"zpool export {quote(p)}" for p in pools), f"date +%s > {EXPORTED_AT}"),
                    check=f"{{ {recovered}; }} || {{ {none_imported}; }}", stage=RecoveryStage.EXPORT)

    def reboot_step(self) -> Step:
        """The paper's "calmly reboot once more"; done when the host booted after the export."""
        booted_since = f'[ ! -e {EXPORTED_AT} ] || [ "$({BOOT_TIME})" -gt "$(cat {EXPORTED_AT})" ]'
        return Step("reboot", commands=("shutdown -r now",), check=booted_since, reboot=True,
                    stage=RecoveryStage.REBOOT)

    def import_step(self, pools: list[str]) -> Step:
        all_imported = " && ".join(pool_imported(p) for p in pools)
        return Step("import pools",
                    commands=(*(f"zpool import -N {quote(p)}" for p in pools), f"date +%s > {IMPORTED_AT}"),
                    check=all_imported, verify=all_imported, stage=RecoveryStage.IMPORT)

    def scrub_step(self, pool: str, stage: int) -> Step:
        """Each controller's own view of each pool is checked; a finished scrub proves nothing about the
        present, so the check only avoids starting a second scrub while one runs."""
        running = f"zpool status {quote(pool)} | grep -q 'scrub in progress'"
        return Step(f"scrub {pool}", commands=(f"zpool scrub {quote(pool)}",), check=running,
                    verify=wait_until(f"! {running}"), stage=stage)

    def clear_step(self, pool: str) -> Step:
        healthy = f"zpool status -x {quote(pool)} | grep -q 'is healthy'"
        return Step(f"clear {pool}", commands=(f"zpool clear {quote(pool)}",), check=healthy,
                    stage=RecoveryStage.CLEAR)

    def ctld_restart_step(self, topo: Topology, host: Host) -> Step:
        """ctld started at boot before the pools were imported, so its LUNs failed: restart it now."""
        own = zvol_device(topo.pool_of(host.name))
        return Step("ctld restart", commands=("service ctld restart",), check=ctld_serves(own),
                    verify=ctld_serves(own), stage=RecoveryStage.PRIVATE_TARGET)

    def survivor_arbitrator_steps(self, topo: Topology, failed: Host, survivor: Host) -> list[Step]:
        """The survivor's session to the failed controller returns by itself once ctld is back (iscsid keeps
        retrying); its arbitrator lost that path and gets it back as the active one."""
        iqn, portal = topo.iscsi.private_target, failed.address("private")
        name = topo.pool_of(failed.name).arbitrator
        return [
            self.session_back_step(iqn, portal, 1, RecoveryStage.ARBITRATOR),
            self.path_back_step(name, session_disk(iqn, portal, 0), True, RecoveryStage.ARBITRATOR),
        ]

    def client_recovery_steps(self, topo: Topology, failed: Host) -> list[Step]:
        iqn, portal = topo.iscsi.public_target, failed.address("public")
        steps = [self.session_back_step(iqn, portal, 2, RecoveryStage.CLIENT)]
        for multipath in topo.client.multipaths:
            primary = topo.pools[multipath.pool].owner == failed.name
            disk = session_disk(iqn, portal, 0 if primary else 1)
            steps.append(self.path_back_step(multipath.name, disk, primary, RecoveryStage.CLIENT))
        return steps

    def session_back_step(self, iqn: str, portal: str, luns: int, stage: int) -> Step:
        """Log in again only if the session is gone; a rescan finds LUNs ctld added after the login."""
        connected = session_connected(iqn, portal, luns=luns)
        return Step(f"session {portal}",
                    commands=(f"{session_exists(iqn, portal)} || iscsictl -A -p {quote(portal)} -t {quote(iqn)}",
                              "camcontrol rescan all"),
                    check=connected, verify=wait_until(connected), stage=stage)

    def path_back_step(self, multipath: str, disk: str, primary: bool, stage: int) -> Step:
        """Put the returned disk back into the multipath: ``add`` when its old path vanished with the
        disconnection, ``restore`` when it is still listed as failed; ``prefer`` makes it active again."""
        name = quote(multipath)
        listed = f"gmultipath list {name} | grep -q \"Name: $dev\\$\""
        command = (f'dev=$({disk}); [ -n "$dev" ] && {{ {listed} || gmultipath add {name} "$dev"; }} && '
                   f'gmultipath restore {name} "$dev"')
        done = f'dev=$({disk}); [ -n "$dev" ] && {listed} && {multipath_healthy(multipath)}'
        if primary:
            command += f' && gmultipath prefer {name} "$dev"'
            done += f' && gmultipath getactive {name} | grep -qw "$dev"'
        return Step(f"path back {multipath}", commands=(command,), check=done, verify=done, stage=stage)
