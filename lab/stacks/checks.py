"""Shell checks both stacks' steps use: the ZFS commands and the polling loop read the same on FreeBSD
and on Linux (OpenZFS keeps the FreeBSD command line)."""

from __future__ import annotations

from lab.stacks.shell import awk_string, quote

WAIT_S = 60
"""How long a step's check waits for something the step started to settle."""


def wait_until(condition: str, seconds: int = WAIT_S) -> str:
    """Shell that polls ``condition`` once a second and exits with its last result."""
    return (f"i=0; until {condition}; do [ $i -ge {seconds} ] && break; i=$((i + 1)); sleep 1; done; "
            f"{condition}")


def pool_imported(pool: str) -> str:
    return f"zpool list -H -o name {quote(pool)} >/dev/null 2>&1"


def pool_online(pool: str) -> str:
    return f'[ "$(zpool list -H -o health {quote(pool)})" = ONLINE ]'


def property_is(target: str, prop: str, value: str, command: str = "zfs") -> str:
    return f"{command} get -H -o value {quote(prop)} {quote(target)} | grep -qx {quote(value)}"


def vdev_in(pool: str, section: str, device: str) -> str:
    """``device`` is listed under ``section`` (logs, cache) in the pool's status."""
    program = (f"$1 == {awk_string(section)} {{s = 1; next}} $1 ~ /^(logs|cache|spares)$/ {{s = 0}} "
               f"s && $1 == {awk_string(device)} {{ok = 1}} END {{exit !ok}}")
    return f"zpool status {quote(pool)} | awk {quote(program)}"
