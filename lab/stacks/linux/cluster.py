"""arbitrator = "cluster": Corosync and Pacemaker on the two controllers decide the takeover, and fence
through the lab's fence listener before they take a pool.

What runs where:

- Corosync (knet) with two links, the private network and the public one, so one lost cable does not
  split the cluster; ``two_node`` (which implies ``wait_for_all``): the survivor of a two-node cluster
  keeps quorum, and a node that starts alone waits for its peer before it runs anything.
- Per pool a group: ``ocf:beast:ZFS`` (the stock ``ocf:heartbeat:ZFS``: ``zpool import -f`` with this pool's
  partitions as ``-d`` and ``cachefile=none``, ``zpool export -f`` to stop; only its monitor asks again
  before it reports a transient state as a failure: scripts/beast-zfs-agent), then everything that holds
  the pool's zvol: ``ocf:beast:arbitrator-path`` (ours: on the peer it adds the local zvol to the
  arbitrator map, as the takeover oracle did) and ``ocf:beast:zvol-luns`` (ours: on the owner, LIO's
  backstore of the zvol and its lun 0 in the private and public targets; scripts/beast-zvol-luns says why
  not the stock iSCSILogicalUnit). Each does nothing on the other node, and zvol-luns comes last so that a
  takeover switches the map without waiting for it (measured: 3-4 s per agent call under TCG). A stop lets
  go of the zvol before the export, so a healthy pool's stop does not fail (a failed stop is a fencing);
  the targets themselves, one per controller and not per pool, stay outside the cluster. A stop may take
  as long as a start, and a failure expires after FAILURE_TIMEOUT_S.
- Each group prefers its owner (score 100) but sticks where it runs (stickiness 200): a pool stays on the
  survivor when its owner comes back, and is given back by the operator (here the drill's recovery, with
  ``crm_resource --move`` and ``--clear``), at a moment somebody chose and measured.
- STONITH: one ``fence_virt`` device per controller (the stock agent in serial mode on /dev/ttyS1, which the
  qemu provider connects to the lab's fence listener), never run on the node it fences. Fencing powers the
  VM off (``pcmk_reboot_action=off``): the drill's recovery starts it again, and it rejoins the cluster only
  when recovery starts Corosync and Pacemaker (both disabled at boot), as an operator would.
- A fence race (both links cut) is settled by a delay on fencing the second controller: the first
  controller fences first and keeps running.
- The pools are multihost=off: the cluster fences before it imports, so OpenZFS's activity check would
  only add its 10 s to every takeover (``parts.MULTIHOST_MODES``); the drill's import watcher checks
  that no pool is ever on two controllers.
- Imports belong to the cluster: each pool's cachefile is none and zfs-import-cache/zfs-import-scan are
  disabled, so no boot imports a pool behind the cluster's back.

The drill in this mode only strikes and observes; nothing here is called by it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from xml.sax.saxutils import quoteattr

from lab.plan import Plan, Step
from lab.stacks.base import Stage, TakebackStage
from lab.stacks.checks import pool_imported, wait_until
from lab.stacks.linux.parts import (
    OWN_VOLUME_LUN,
    SCRIPTS,
    STATE_DIR,
    backstore_name,
    disk_path,
    lun_path,
    volume_wwn,
    zvol_device,
)
from lab.stacks.linux.recovery import pool_back_plan
from lab.stacks.shell import quote
from lab.topology import Host, Pool, Topology

COROSYNC_CONF_PATH = "/etc/corosync/corosync.conf"
AUTHKEY_PATH = "/etc/corosync/authkey"
CIB_PATH = f"{STATE_DIR}/cluster-configuration.xml"
OCF_AGENT_PATH = "/usr/lib/ocf/resource.d/beast/arbitrator-path"
ZFS_AGENT_PATH = "/usr/lib/ocf/resource.d/beast/ZFS"
LUNS_AGENT_PATH = "/usr/lib/ocf/resource.d/beast/zvol-luns"
FENCE_DEVICE = "/dev/ttyS1"
"""The guest's second UART; the qemu provider connects it to the lab's fence listener."""

CLUSTER_VIEWS = {
    "crm_mon": "crm_mon --one-shot --inactive --fence-history=2 --timing-details",
    "corosync-links": "corosync-cfgtool -s",
    "quorum": "corosync-quorumtool -s",
    "zfs-dbgmsg": "tail -n 4000 /proc/spl/kstat/zfs/dbgmsg",
}
"""What the drill saves from each controller at each look: Pacemaker's view (resources, fencing history),
Corosync's links and quorum, and OpenZFS's debug messages (each step of an import, timestamped: where the
takeover's import spends its seconds)."""
CLUSTER_LOG_COMMAND = "journalctl --boot --no-pager -o short-iso-precise -u corosync.service -u pacemaker.service"
"""Both units' logs: the resource and fence agents run under pacemaker.service, so theirs are there too."""

COROSYNC_TOKEN_MS = 3000
"""Corosync's default for two nodes. Shorter tokens risk a membership change whenever TCG starves a guest."""
COROSYNC_CONSENSUS_MS = 1500
"""Set, not left at its default of 1.2 x token (3.6 s): corosync.conf(5) says a two-node cluster is safe with a
consensus above join (50 ms) and below token. A lost node is declared after token + consensus, 4.5 s."""
PREFERENCE_SCORE = 100
"""Each pool's group prefers its owner by this much..."""
STICKINESS = 200
"""...and sticks where it runs by more: no automatic failback."""
FAILURE_TIMEOUT_S = 120
"""An old failure expires, so one transient failure does not count against a resource for ever."""
FENCE_RACE_DELAY_S = 5
"""Given as ``node:delay``: Pacemaker 2.1.5 logs "pcmk_delay_base: empty value in mapping" at every fencing
for a plain value (measured), though it uses it."""
MONITOR_INTERVAL_S = 5
JOIN_TIMEOUT_S = 120
"""How long a controller waits for the cluster to form, or to give it its pool back."""


def node_id(topo: Topology, name: str) -> int:
    """A controller's Corosync node id: its place among the controllers, from 1."""
    return [host.name for host in topo.controllers].index(name) + 1


def corosync_conf(topo: Topology) -> str:
    nodes = "".join(
        f"    node {{\n        name: {host.name}\n        nodeid: {node_id(topo, host.name)}\n"
        f"        ring0_addr: {host.address('private')}\n        ring1_addr: {host.address('public')}\n    }}\n"
        for host in topo.controllers)
    return (
        "# BeaST Lab, arbitrator = \"cluster\": see lab/stacks/linux/cluster.py\n"
        "totem {\n    version: 2\n"
        f"    cluster_name: {topo.lab.name}\n"
        "    transport: knet\n    crypto_cipher: aes256\n    crypto_hash: sha256\n"
        f"    token: {COROSYNC_TOKEN_MS}\n    consensus: {COROSYNC_CONSENSUS_MS}\n"
        "    interface {\n        linknumber: 0\n    }\n    interface {\n        linknumber: 1\n    }\n}\n"
        f"nodelist {{\n{nodes}}}\n"
        "quorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n"
        "logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n"
        "    to_syslog: yes\n    timestamp: on\n}\n"
    )


def authkey(topo: Topology) -> str:
    """The cluster's shared key, derived from the lab's name and hostids: the same on both controllers
    without a secret to carry. A lab's networks are its own switches; a real cluster uses corosync-keygen."""
    seed = f"beast-lab corosync {topo.lab.name} {' '.join(h.name for h in topo.controllers)}"
    return "".join(hashlib.sha512(f"{seed} {i}".encode()).hexdigest() for i in range(4))


def import_arguments(topo: Topology, pool: Pool) -> str:
    """The agent's ``importargs``, word-split unquoted by it: one ``-d`` per partition of the pool, as
    ``pools.import_devices`` (a scan of /dev/disk/by-id would read the arbitrator map and hang)."""
    return " ".join(f"-d {disk_path(topo, d)}-part1" for d in pool.disks)


def group_id(pool: Pool) -> str:
    return f"pool-{pool.name}"


def fence_id(host: Host) -> str:
    return f"fence-{host.name}"


def _nvpairs(owner: str, values: dict[str, str]) -> str:
    return "".join(f"<nvpair id={quoteattr(f'{owner}-{name}')} name={quoteattr(name)} value={quoteattr(value)}/>"
                   for name, value in values.items())


def _primitive(rid: str, cls: str, kind: str, params: dict[str, str], ops: str, provider: str = "") -> str:
    where = f" provider={quoteattr(provider)}" if provider else ""
    return (f"<primitive id={quoteattr(rid)} class={quoteattr(cls)}{where} type={quoteattr(kind)}>"
            f"<instance_attributes id={quoteattr(f'{rid}-params')}>{_nvpairs(rid, params)}</instance_attributes>"
            f"<operations>{ops}</operations></primitive>")


def _op(rid: str, name: str, timeout: str, interval: str = "0s") -> str:
    return (f"<op id={quoteattr(f'{rid}-{name}-{interval}')} name={quoteattr(name)} "
            f"interval={quoteattr(interval)} timeout={quoteattr(timeout)}/>")


def cib_configuration(topo: Topology) -> str:
    """The CIB's configuration section: properties, fencing, one group per pool, where each runs."""
    resources, constraints = [], []
    second = topo.controllers[1].name
    for host in topo.controllers:
        rid = fence_id(host)
        delay = {"pcmk_delay_base": f"{host.name}:{FENCE_RACE_DELAY_S}s"} if host.name == second else {}
        resources.append(_primitive(rid, "stonith", "fence_virt", {
            "serial_device": FENCE_DEVICE, "pcmk_host_list": host.name, "pcmk_host_check": "static-list",
            "pcmk_reboot_action": "off", **delay, "timeout": "30"},
            _op(rid, "monitor", "30s", "60s")))
        constraints.append(f"<rsc_location id={quoteattr(f'{rid}-not-on-itself')} rsc={quoteattr(rid)} "
                           f"node={quoteattr(host.name)} score=\"-INFINITY\"/>")
    for host in topo.controllers:
        pool = topo.pool_of(host.name)
        zfs, luns, path, group = f"zfs-{pool.name}", f"luns-{pool.name}", f"path-{pool.name}", group_id(pool)
        served = " ".join(f"{iqn}:{OWN_VOLUME_LUN}" for iqn in (topo.iscsi.private_target, topo.iscsi.public_target))
        iscsi = lun_path(host.address("private"), topo.iscsi.private_target, OWN_VOLUME_LUN)
        members = (
            _primitive(zfs, "ocf", "ZFS", {"pool": pool.name, "importargs": import_arguments(topo, pool),
                                           "importforce": "true"},
                       _op(zfs, "start", "120s") + _op(zfs, "stop", "120s")
                       + _op(zfs, "monitor", "30s", f"{MONITOR_INTERVAL_S}s"), provider="beast")
            + _primitive(path, "ocf", "arbitrator-path",
                         {"map": pool.arbitrator, "zvol": zvol_device(pool), "iscsi": iscsi},
                         _op(path, "start", "90s") + _op(path, "stop", "90s")
                         + _op(path, "monitor", "20s", "10s"), provider="beast")
            + _primitive(luns, "ocf", "zvol-luns",
                         {"zvol": zvol_device(pool), "backstore": backstore_name(pool), "wwn": volume_wwn(pool),
                          "owner": host.name, "luns": served},
                         _op(luns, "start", "90s") + _op(luns, "stop", "90s")
                         + _op(luns, "monitor", "20s", "10s"), provider="beast"))
        resources.append(f"<group id={quoteattr(group)}>{members}</group>")
        constraints.append(f"<rsc_location id={quoteattr(f'{group}-prefers-{host.name}')} rsc={quoteattr(group)} "
                           f"node={quoteattr(host.name)} score=\"{PREFERENCE_SCORE}\"/>")
    defaults = _nvpairs("beast-rsc-defaults", {"resource-stickiness": str(STICKINESS),
                                               "failure-timeout": f"{FAILURE_TIMEOUT_S}s"})
    properties = _nvpairs("beast", {"stonith-enabled": "true", "stonith-timeout": "60s",
                                    "no-quorum-policy": "stop", "cluster-recheck-interval": "1min"})
    return (
        "<configuration>"
        f"<crm_config><cluster_property_set id=\"beast-options\">{properties}</cluster_property_set></crm_config>"
        "<nodes/>"
        f"<resources>{''.join(resources)}</resources>"
        f"<constraints>{''.join(constraints)}</constraints>"
        "<rsc_defaults><meta_attributes id=\"beast-rsc-defaults\">"
        f"{defaults}"
        "</meta_attributes></rsc_defaults>"
        "</configuration>\n"
    )


def resource_runs_on(resource: str, host: str) -> str:
    """Pacemaker places ``resource`` on ``host``: also while its start is still running there (measured: the
    failback's group was "running on" ctrl-a 6 s before its import finished), so callers add what it does."""
    return f"crm_resource --locate --resource {quote(resource)} 2>/dev/null | grep -q {quote(f'running on: {host}')}"


def cluster_owns_imports_step(topo: Topology, host: Host, stage: int, created_here: bool = True) -> Step:
    """No boot imports a pool: the import services are off, no cache file, and the pool this host
    created (``created_here``: at provisioning) leaves the cache; the cluster's imports never enter it."""
    services = "zfs-import-cache.service zfs-import-scan.service"
    done = f"! systemctl is-enabled --quiet {services} && [ ! -e /etc/zfs/zpool.cache ]"
    commands = (f"systemctl disable {services}", "rm -f /etc/zfs/zpool.cache")
    if created_here:
        pool = quote(topo.pool_of(host.name).name)
        done = f"[ \"$(zpool get -H -o value cachefile {pool})\" = none ] && {done}"
        commands = (f"zpool set cachefile=none {pool}", *commands)
    return Step("imports belong to the cluster", commands=commands, check=done, verify=done, stage=stage)


def cluster_member_step(topo: Topology, stage: int) -> Step:
    """Corosync's configuration and key, our resource agent, then Corosync and Pacemaker started (not
    enabled: after a fence the node rejoins when an operator, here the drill's recovery, starts them)."""
    running = "systemctl is-active --quiet corosync.service pacemaker.service"
    return Step(
        "cluster member",
        files={COROSYNC_CONF_PATH: corosync_conf(topo), AUTHKEY_PATH: authkey(topo),
               OCF_AGENT_PATH: (SCRIPTS / "beast-arbitrator-path").read_text(),
               ZFS_AGENT_PATH: (SCRIPTS / "beast-zfs-agent").read_text(),
               LUNS_AGENT_PATH: (SCRIPTS / "beast-zvol-luns").read_text()},
        commands=(f"chmod 400 {AUTHKEY_PATH}", f"chmod 755 {OCF_AGENT_PATH} {ZFS_AGENT_PATH} {LUNS_AGENT_PATH}",
                  "systemctl start corosync.service pacemaker.service"),
        check=running, verify=running, stage=stage)


def cluster_resources_step(topo: Topology, stage: int) -> Step:
    """The configuration loaded once both nodes are members; done when each pool runs on its owner."""
    both_online = " && ".join(f"crm_node -l 2>/dev/null | grep -q {quote(f' {h.name} member')}"
                              for h in topo.controllers)
    at_home = " && ".join(resource_runs_on(group_id(topo.pool_of(h.name)), h.name) for h in topo.controllers)
    loaded = f'id="{group_id(topo.pool_of(topo.controllers[0].name))}"'
    return Step(
        "cluster resources",
        files={CIB_PATH: cib_configuration(topo)},
        commands=(wait_until(both_online, JOIN_TIMEOUT_S),
                  f"cibadmin --replace --scope configuration --xml-file {CIB_PATH}"),
        check=f"cibadmin --query --scope resources 2>/dev/null | grep -q {quote(loaded)} && {at_home}",
        verify=wait_until(at_home, JOIN_TIMEOUT_S), stage=stage)


def cluster_provision_steps(topo: Topology, host: Host) -> list[Step]:
    """After the arbitrator maps: the cluster on both controllers; its resources from the first one."""
    steps = [cluster_owns_imports_step(topo, host, Stage.ARBITRATOR), cluster_member_step(topo, Stage.ARBITRATOR)]
    if host == topo.controllers[0]:
        steps.append(cluster_resources_step(topo, Stage.PUBLIC_TARGET))
    return steps


def cluster_recovery_plan(topo: Topology, failed: str) -> Plan:
    """The fenced controller, started again, rejoins the cluster; its pool stays on the survivor (stickiness)
    until it is given back explicitly, as an operator would (``crm_resource --move``, then ``--clear`` so the
    move leaves no constraint behind); then its targets, both arbitrator maps and the client's paths are
    rebuilt, and each controller scrubs its own pool. The stages are the takeback's; nothing here imports.

    The give-back waits for the cluster to settle, not only for the pool to be listed: Pacemaker says a group
    runs on a node while its later members still start, and a target rebuilt while zvol-luns made its LUNs
    failed that start (found by the drill: the group went back to the survivor)."""
    host = topo.hosts[failed]
    group = group_id(topo.pool_of(failed))
    stage = TakebackStage
    member = f"crm_node -l 2>/dev/null | grep -q {quote(f' {failed} member')}"
    home = f"{resource_runs_on(group, failed)} && {pool_imported(topo.pool_of(failed).name)}"
    moved = f"cibadmin --query --scope constraints 2>/dev/null | grep -q {quote(f'cli-prefer-{group}')}"
    rejoin = Step(
        "rejoin the cluster",
        commands=("systemctl start corosync.service pacemaker.service",),
        check=f"systemctl is-active --quiet pacemaker.service && {member}",
        verify=wait_until(member, JOIN_TIMEOUT_S), stage=stage.IMPORT)
    settled = f"crm_resource --wait --timeout {JOIN_TIMEOUT_S}s"
    give_back = Step(
        f"give {group} back",
        commands=(f"{home} || crm_resource --move --resource {quote(group)} --node {quote(failed)}",
                  settled, wait_until(home, JOIN_TIMEOUT_S),
                  f"crm_resource --clear --resource {quote(group)}", settled),
        check=f"{home} && ! {moved}", verify=f"{home} && ! {moved}", stage=stage.IMPORT)
    owns_imports = cluster_owns_imports_step(topo, host, stage.IMPORT, created_here=False)
    return pool_back_plan(topo, failed, [owns_imports, rejoin, give_back], survivor_first=[])


TIMELINE_MARKS = (
    ("links down", r"\[KNET  \] link: host: {victim_id} link: \d+ is down"),
    ("token lost", r"\[TOTEM \] A processor failed"),
    ("membership without the victim", r"\[TOTEM \] A new membership"),
    ("Pacemaker lost the victim", r"pacemaker-controld\[\d+\]: +notice: Node {victim} state is now lost"),
    ("new DC elected", r"State transition S_ELECTION -> S_INTEGRATION"),
    ("transition calculated", r"Calculated transition \d+"),
    ("fencing requested", r"Requesting fencing \(\w+\) of node {victim}\b"),
    ("fenced", r"Operation '\w+' targeting {victim} .*: OK"),
    ("import started", r"Initiating start operation zfs-{pool}_start"),
    ("imported", r"Result of start operation for zfs-{pool} on {survivor}: ok"),
    ("map switched", r"Result of start operation for path-{pool} on {survivor}: ok"),
)
"""What the survivor's cluster log says happened, in order: each mark's first line after the fault. Knet sees
the victim's links go; Corosync waits out the token and then consensus before it forms a membership
without the victim; Pacemaker's controller then loses the peer, elects itself DC when the victim was the
DC, and the scheduler calculates the transition that fences and moves the pool. The resource names are
this module's (``group_id``'s members); the victim's Corosync node id is its place among the controllers."""


def takeover_timeline(topo: Topology, journal: str, struck: float, victim: str) -> dict[str, float]:
    """Seconds after the fault at which each of TIMELINE_MARKS first appears in the survivor's journal
    (``journalctl -o short-iso-precise``: the guest's clock, set from the host's); a mark never seen is left
    out. Where every second of a takeover goes."""
    survivor, pool = topo.peer(victim).name, topo.pool_of(victim).name
    patterns = [(label, re.compile(p.format(victim=re.escape(victim), survivor=re.escape(survivor),
                                              pool=re.escape(pool), victim_id=node_id(topo, victim))))
                for label, p in TIMELINE_MARKS]
    found: dict[str, float] = {}
    for line in journal.splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except ValueError:
            continue
        if at < struck - 1:
            continue
        for label, pattern in patterns:
            if label not in found and pattern.search(rest):
                found[label] = round(at - struck, 1)
    return {label: found[label] for label, _ in TIMELINE_MARKS if label in found}
