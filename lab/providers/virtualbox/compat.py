"""Which Vagrant drives which VirtualBox, and where VirtualBox's host-only range rule applies.

From hashicorp/vagrant's own source, so a mismatch stops ``bst up`` in one line before Vagrant does:
- plugins/providers/virtualbox/driver/meta.rb maps a VirtualBox ``major.minor`` to a driver; the map
  at each release tag gives the first Vagrant that knows each VirtualBox: 6.1 from v2.2.7, 7.0 from
  v2.3.2, 7.1 from v2.4.2, 7.2 from v2.4.9 (the newest in its history). Any other VirtualBox is
  refused by that Vagrant ("VirtualBoxInvalidVersion").
- plugins/providers/virtualbox/action/network.rb (validate_hostonly_ip!) checks host-only addresses
  against /etc/vbox/networks.conf only for VirtualBox >= 6.1.28, never on Windows, and not on macOS
  with VirtualBox >= 7.0.0, matching VirtualBox's manual (ch. 6.7: Linux, macOS, Solaris).
- driver/version_7_0.rb: on macOS with VirtualBox >= 7 host-only *interfaces* are gone
  (``hostonlyif create`` fails: "failed to open /dev/vboxnetctl", vagrant#12967) and Vagrant creates
  host-only *networks* (``VBoxManage hostonlynet add``) itself; that code is in v2.3.3 and later.
"""

from __future__ import annotations

import re

from lab.errors import LabError

Version = tuple[int, int, int]

VAGRANT_FOR_VIRTUALBOX: dict[tuple[int, int], Version] = {
    (6, 1): (2, 2, 7),
    (7, 0): (2, 3, 2),
    (7, 1): (2, 4, 2),
    (7, 2): (2, 4, 9),
}
"""VirtualBox major.minor -> the first Vagrant whose driver map (meta.rb) lists it."""

NEWEST_KNOWN_VAGRANT: Version = (2, 4, 9)
HOST_ONLY_RANGES_SINCE: Version = (6, 1, 28)
HOST_ONLY_NETWORKS_SINCE: Version = (7, 0, 0)
"""On macOS, VirtualBox from 7.0 has host-only networks instead of host-only interfaces."""
VAGRANT_HOST_ONLY_NETWORKS_SINCE: Version = (2, 3, 3)
VAGRANT_DOWNLOADS = "https://developer.hashicorp.com/vagrant/install"


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def parse_vagrant_version(text: str) -> Version:
    """``2.3.4`` or ``Vagrant 2.4.2.dev`` -> (2, 3, 4)."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise LabError(f"cannot read the Vagrant version from {text.strip()!r}; check `vagrant --version`")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def is_windows(platform: str) -> bool:
    return platform.startswith(("win32", "cygwin", "msys"))


def host_only_ranges_apply(vbox: Version, platform: str) -> bool:
    """VirtualBox enforces networks.conf here (Vagrant's validate_hostonly_ip! rule)."""
    if vbox < HOST_ONLY_RANGES_SINCE or is_windows(platform):
        return False
    return not (platform == "darwin" and vbox >= HOST_ONLY_NETWORKS_SINCE)


def uses_host_only_networks(vbox: Version, platform: str) -> bool:
    """macOS with VirtualBox >= 7: no host-only interfaces, Vagrant makes host-only networks."""
    return platform == "darwin" and vbox >= HOST_ONLY_NETWORKS_SINCE


def check_vagrant_drives(vbox: Version, vagrant: Version, platform: str) -> None:
    """One LabError naming the Vagrant needed when this Vagrant cannot drive this VirtualBox here."""
    series = vbox[:2]
    needed = VAGRANT_FOR_VIRTUALBOX.get(series)
    if needed is None and series > max(VAGRANT_FOR_VIRTUALBOX) and vagrant <= NEWEST_KNOWN_VAGRANT:
        raise LabError(
            f"Vagrant {dotted(vagrant)} cannot drive VirtualBox {dotted(vbox)}: Vagrant up to "
            f"{dotted(NEWEST_KNOWN_VAGRANT)} knows VirtualBox up to {dotted(max(VAGRANT_FOR_VIRTUALBOX))}; "
            f"install a Vagrant that lists {dotted(series)} ({VAGRANT_DOWNLOADS}) or VirtualBox "
            f"{dotted(max(VAGRANT_FOR_VIRTUALBOX))}"
        )
    if needed is not None and vagrant < needed:
        raise LabError(
            f"Vagrant {dotted(vagrant)} cannot drive VirtualBox {dotted(vbox)}: VirtualBox {dotted(series)} "
            f"needs Vagrant {dotted(needed)} or later; upgrade Vagrant ({VAGRANT_DOWNLOADS}) or use a "
            "VirtualBox this Vagrant knows"
        )
    if uses_host_only_networks(vbox, platform) and vagrant < VAGRANT_HOST_ONLY_NETWORKS_SINCE:
        raise LabError(
            f"Vagrant {dotted(vagrant)} cannot make the lab's host-only networks with VirtualBox {dotted(vbox)} "
            "on macOS (VirtualBox 7 has host-only networks, not interfaces: `hostonlyif create` fails there); "
            f"install Vagrant {dotted(VAGRANT_HOST_ONLY_NETWORKS_SINCE)} or later ({VAGRANT_DOWNLOADS})"
        )
