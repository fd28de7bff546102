"""Shell checks both stacks' steps use: the ZFS commands and the polling loop read the same on FreeBSD
and on Linux (OpenZFS keeps the FreeBSD command line)."""

from __future__ import annotations

import shlex

WAIT_S = 60
"""How long a step's check waits for something the step started to settle."""


def wait_until(condition: str, seconds: int = WAIT_S) -> str:
    """Shell that polls ``condition`` once a second and exits with its last result."""
    return (f"i=0; until {condition}; do [ $i -ge {seconds} ] && break; i=$((i + 1)); sleep 1; done; "
            f"{condition}")


def pool_imported(pool: str) -> str:
    return f"zpool list -H -o name {pool} >/dev/null 2>&1"


def pool_online(pool: str) -> str:
    return f'[ "$(zpool list -H -o health {pool})" = ONLINE ]'


def property_is(target: str, prop: str, value: str, command: str = "zfs") -> str:
    return f"{command} get -H -o value {prop} {target} | grep -qx {shlex.quote(value)}"


def vdev_in(pool: str, section: str, device: str) -> str:
    """``device`` is listed under ``section`` (logs, cache) in the pool's status."""
    return (f"zpool status {pool} | awk '$1 == \"{section}\" {{s = 1; next}} "
            f"$1 ~ /^(logs|cache|spares)$/ {{s = 0}} s && $1 == \"{device}\" {{ok = 1}} END {{exit !ok}}'")
