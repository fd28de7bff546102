"""Root access on the official FreeBSD 10.3 box, and its first boot settled before the lab provisions.

What the box has (FreeBSD's release/tools/vagrant.conf and vagrant-virtualbox.conf, r285814, the
revision in 10.3 and 10.4): ``ifconfig_DEFAULT="SYNCDHCP"`` in rc.conf, the ``firstboot-freebsd-update``
and ``firstboot-pkgs`` rc.d scripts enabled (pkgs: ``sudo rsync virtualbox-ose-additions``), and a
``/firstboot`` sentinel. Both firstboot scripts are ``BEFORE: LOGIN``, so they have run by the time sshd
(``REQUIRE: LOGIN``) answers; either may ``touch /firstboot-reboot`` (updates installed, or packages with
rc.d scripts). /etc/rc (r259040) runs every other script, sshd included, then removes /firstboot and,
when /firstboot-reboot exists, removes it and reboots (``kill -INT 1``): right after sshd came up.

So the root-setup script, besides authorising the lab key:
- gives each lab NIC ``ifconfig_emN="up"`` in rc.conf, so later boots do not wait for a DHCP lease the
  host-only networks never serve (the stack's rc.conf.local, read after rc.conf, gives the addresses);
- disables both firstboot scripts, should /firstboot ever survive to another boot (their being off
  also tells a later run that the first run already settled the first boot);
- while /firstboot exists (rc not finished), deletes /firstboot-reboot, cancelling the reboot, and waits
  for rc to remove /firstboot;
- prints one ``beast-firstboot:`` line the provider reads to tell whether a reboot may still come.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import LabError

REMOTE_KEY = "/tmp/beast-lab.pub"
REMOTE_SCRIPT = "/tmp/beast-root-access.sh"
SU_COMMAND = f"su -m root -c 'sh {REMOTE_SCRIPT}'"
FIRSTBOOT_WAIT_SECONDS = 40
"""How long the script waits for rc(8) to finish the first boot; the su step's own timeout is 60 s."""
REBOOT_GRACE_SECONDS = 30.0
"""After rc removed /firstboot, a requested reboot starts at once; past this, none is coming."""
BOOT_TIME_COMMAND = "sysctl -n kern.boottime"
STATUS_PREFIX = "beast-firstboot:"


def root_access_script(interfaces: list[str]) -> str:
    """The script run as root through ``su`` on each VM (idempotent: it also runs on every ``bst start``)."""
    nics = " ".join(f"ifconfig_{name}=up" for name in interfaces)
    quiet_nics = f"sysrc {nics} >/dev/null\n" if nics else ""
    return f"""\
#!/bin/sh
# BeaST Lab: let root in with the lab key only; send the console to the serial port too;
# keep the box's first-boot settings (SYNCDHCP on every NIC, firstboot update and reboot) out of the lab.
set -e
umask 077
mkdir -p /root/.ssh
touch /root/.ssh/authorized_keys
grep -qxF "$(cat {REMOTE_KEY})" /root/.ssh/authorized_keys || cat {REMOTE_KEY} >> /root/.ssh/authorized_keys
if ! grep -qx 'PermitRootLogin without-password' /etc/ssh/sshd_config; then
    sed -i '' '/^PermitRootLogin/d' /etc/ssh/sshd_config
    echo 'PermitRootLogin without-password' >> /etc/ssh/sshd_config
    service sshd reload
fi
if ! grep -q '^console=' /boot/loader.conf; then
    printf 'boot_multicons="YES"\\nconsole="comconsole,vidconsole"\\n' >> /boot/loader.conf
fi
setup=first
[ "$(sysrc -n firstboot_pkgs_enable 2>/dev/null)" = NO ] && setup=again
{quiet_nics}sysrc firstboot_freebsd_update_enable=NO firstboot_pkgs_enable=NO >/dev/null
sentinel=absent
reboot=none
waited=0
while [ -e /firstboot ] && [ $waited -lt {FIRSTBOOT_WAIT_SECONDS} ]; do
    sentinel=present
    if [ -e /firstboot-reboot ]; then
        rm -f /firstboot-reboot
        reboot=cancelled
    fi
    sleep 1
    waited=$((waited + 1))
done
[ -e /firstboot ] && sentinel=stuck
boottime=$({BOOT_TIME_COMMAND} | sed 's/^{{ sec = \\([0-9]*\\),.*/\\1/')
rootdir=$(stat -f %m /)
now=$(date +%s)
echo "{STATUS_PREFIX} setup=$setup sentinel=$sentinel reboot=$reboot boottime=$boottime rootdir=$rootdir now=$now"
rm -f {REMOTE_KEY} {REMOTE_SCRIPT}
"""


@dataclass(frozen=True)
class FirstBoot:
    """What the root-setup script saw: ``setup`` first (this box never ran it) or again; ``sentinel``
    present (rc was still running), absent or stuck; ``rootdir`` is the mtime of / (rc's removal of
    /firstboot changes it)."""

    setup: str
    sentinel: str
    reboot: str
    boottime: int
    rootdir: int
    now: int

    def reboot_grace_left(self, grace: float = REBOOT_GRACE_SECONDS) -> float:
        """Seconds during which a firstboot reboot may still begin; 0 when none can."""
        if self.setup == "again":
            return 0.0  # the first run already waited out the first boot
        if self.sentinel == "present":
            return 0.0  # rc finished while we watched, and any reboot request was deleted first
        if self.rootdir < self.boottime:
            return 0.0  # / unchanged since boot: no first boot ended in this boot
        return max(0.0, grace - (self.now - self.rootdir))


def parse_first_boot(host: str, output: str) -> FirstBoot:
    match = re.search(rf"{STATUS_PREFIX} setup=(\w+) sentinel=(\w+) reboot=(\w+) boottime=(\d+) rootdir=(\d+) "
                      r"now=(\d+)", output)
    if match is None:
        last = (output.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"{host}: the root setup printed no `{STATUS_PREFIX}` line (last line: {last}); "
                       f"see `vagrant ssh {host}` (then `su -`) and its console log")
    setup, sentinel, reboot, *numbers = match.groups()
    status = FirstBoot(setup, sentinel, reboot, *(int(n) for n in numbers))
    if status.sentinel == "stuck":
        raise LabError(f"{host}: the box's first boot has not finished after {FIRSTBOOT_WAIT_SECONDS} s "
                       "(/firstboot still there: rc(8) is still running its firstboot scripts); see its console "
                       "log, wait, and run `bst up` again")
    return status


def parse_boot_time(text: str) -> int:
    """``{ sec = 1459468800, usec = 0 } Fri Apr  1 ...`` -> 1459468800."""
    match = re.search(r"sec = (\d+)", text)
    if match is None:
        raise LabError(f"cannot read the boot time from {text.strip()!r}")
    return int(match.group(1))
