"""The FreeBSD box's first boot: the root setup's exact commands, run against a simulated rc(8).

The box (release/tools/vagrant.conf r285814) ships ``ifconfig_DEFAULT="SYNCDHCP"``, firstboot
freebsd-update and pkgs, and /firstboot; /etc/rc (r259040) removes /firstboot after every rc.d script,
sshd included, and reboots when /firstboot-reboot exists. The script is run here by /bin/sh with the
guest's paths moved under a temporary directory and FreeBSD's tools (sysrc, service, sysctl, BSD
``stat -f`` and ``sed -i ''``) replaced by shims that log or answer as FreeBSD does; a background
process plays rc's last lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.providers.virtualbox import VirtualBoxProvider
from lab.providers.virtualbox import provider as provider_module
from lab.providers.virtualbox.firstboot import (
    REMOTE_KEY,
    REMOTE_SCRIPT,
    SU_COMMAND,
    FirstBoot,
    parse_first_boot,
    root_access_script,
)
from lab.topology import load_topology

PAPER = load_topology()
BOOT_TIME = 1459468800
GUEST_PATHS = ("/firstboot", "/root/.ssh", "/etc/ssh/sshd_config", "/boot/loader.conf", REMOTE_KEY, REMOTE_SCRIPT)
SHIMS = {
    "sysrc": ('if [ "$1" = -n ]; then grep "^$2=" "$GUEST/rc.conf" | cut -d= -f2 | tr -d \'"\'; exit; fi\n'
              'echo "$*" >> "$GUEST/sysrc.log"\n'),
    "service": 'echo "$*" >> "$GUEST/service.log"\n',
    "sysctl": f'[ "$*" = "-n kern.boottime" ] && echo "{{ sec = {BOOT_TIME}, usec = 0 }} Fri Apr  1 00:00:00 2016"\n',
    "stat": '[ "$1 $2" = "-f %m" ] || exit 64\nexec /usr/bin/stat -c %Y "$GUEST$3"\n',
    "sed": 'if [ "$1" = "-i" ] && [ "$2" = "" ]; then shift 2; exec /bin/sed -i "$@"; fi\nexec /bin/sed "$@"\n',
}
"""FreeBSD's tools as the script uses them; ``stat -f %m /`` reads the guest root, ``sed -i ''`` is BSD's."""


def test_the_script_sets_the_lab_nics_and_disables_firstboot_with_exact_commands():
    controller = root_access_script(["em0", "em1"])
    assert "\nsysrc ifconfig_em0=up ifconfig_em1=up >/dev/null\n" in controller
    assert "\nsysrc firstboot_freebsd_update_enable=NO firstboot_pkgs_enable=NO >/dev/null\n" in controller
    assert "        rm -f /firstboot-reboot\n" in controller
    client = root_access_script(["em0"])
    assert "\nsysrc ifconfig_em0=up >/dev/null\n" in client and "em1" not in client


def test_the_script_is_plain_sh_and_the_su_line_survives_csh():
    done = subprocess.run(["sh", "-n"], input=root_access_script(["em0", "em1"]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if shutil.which("tcsh") is None:
        pytest.skip("tcsh (FreeBSD's csh) is not installed")
    done = subprocess.run(["tcsh", "-f", "-n", "-c", SU_COMMAND], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout + done.stderr == ""


def guest(tmp_path: Path, *, firstboot: bool, reboot: bool, again: bool = False) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "guest"
    for directory in ("etc/ssh", "boot", "tmp", "bin"):
        (root / directory).mkdir(parents=True)
    (root / "etc/ssh/sshd_config").write_text("#PermitRootLogin no\nUseDNS no\n")
    (root / "boot/loader.conf").write_text('autoboot_delay="-1"\n')
    (root / "rc.conf").write_text(f'ifconfig_DEFAULT="SYNCDHCP"\nfirstboot_pkgs_enable="{"NO" if again else "YES"}"\n')
    (root / REMOTE_KEY.lstrip("/")).write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbeast beast-lab-beast\n")
    if firstboot:
        (root / "firstboot").touch()
    if reboot:
        (root / "firstboot-reboot").touch()
    for name, body in SHIMS.items():
        shim = root / "bin" / name
        shim.write_text("#!/bin/sh\n" + body)
        shim.chmod(0o755)
    env = {**os.environ, "GUEST": str(root), "PATH": f"{root / 'bin'}:{os.environ['PATH']}"}
    return root, env


def run_in_guest(root: Path, env: dict[str, str], script: str) -> str:
    pattern = re.compile("|".join(re.escape(path) for path in GUEST_PATHS))
    moved = pattern.sub(lambda m: f"{root}{m.group(0)}", script)
    (root / REMOTE_SCRIPT.lstrip("/")).write_text(moved)
    done = subprocess.run(["sh", str(root / REMOTE_SCRIPT.lstrip("/"))], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rc_end(root: Path, after: float) -> subprocess.Popen:
    """rc(8)'s last lines, ``after`` seconds from now: remove /firstboot, reboot if /firstboot-reboot exists."""
    rc = (f"sleep {after}; cd {root}; if [ -e firstboot ]; then rm firstboot; "
          "if [ -e firstboot-reboot ]; then rm firstboot-reboot; touch REBOOTED; fi; fi")
    return subprocess.Popen(["sh", "-c", rc])


def test_a_reboot_requested_by_firstboot_is_cancelled_while_rc_still_runs(tmp_path: Path):
    root, env = guest(tmp_path, firstboot=True, reboot=True)
    rc = rc_end(root, 1.5)
    output = run_in_guest(root, env, root_access_script(["em0", "em1"]))
    rc.wait(timeout=30)
    assert not (root / "REBOOTED").exists()
    status = parse_first_boot("ctrl-a", output)
    assert (status.setup, status.sentinel, status.reboot, status.boottime) == ("first", "present", "cancelled",
                                                                               BOOT_TIME)
    assert status.reboot_grace_left() == 0
    assert (root / "sysrc.log").read_text().splitlines() == [
        "ifconfig_em0=up ifconfig_em1=up", "firstboot_freebsd_update_enable=NO firstboot_pkgs_enable=NO"]
    assert (root / "root/.ssh/authorized_keys").read_text() == (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIbeast beast-lab-beast\n")
    assert (root / "etc/ssh/sshd_config").read_text() == (
        "#PermitRootLogin no\nUseDNS no\nPermitRootLogin without-password\n")
    assert (root / "service.log").read_text() == "sshd reload\n"
    assert not (root / REMOTE_KEY.lstrip("/")).exists() and not (root / REMOTE_SCRIPT.lstrip("/")).exists()


def test_a_first_boot_that_just_ended_leaves_a_reboot_window(tmp_path: Path):
    root, env = guest(tmp_path, firstboot=False, reboot=False)
    os.utime(root, (time.time(), time.time()))
    status = parse_first_boot("ctrl-b", run_in_guest(root, env, root_access_script(["em0", "em1"])))
    assert (status.setup, status.sentinel, status.reboot) == ("first", "absent", "none")
    assert 25 <= status.reboot_grace_left() <= 30


def test_a_later_run_of_the_setup_does_not_wait_again(tmp_path: Path):
    root, env = guest(tmp_path, firstboot=False, reboot=False, again=True)
    os.utime(root, (time.time(), time.time()))
    status = parse_first_boot("ctrl-b", run_in_guest(root, env, root_access_script(["em0", "em1"])))
    assert status.setup == "again" and status.reboot_grace_left() == 0


@pytest.mark.parametrize("status, left", [
    (FirstBoot("first", "absent", "none", boottime=1000, rootdir=900, now=1010), 0.0),
    (FirstBoot("first", "absent", "none", boottime=1000, rootdir=1005, now=1045), 0.0),
    (FirstBoot("first", "absent", "none", boottime=1000, rootdir=1005, now=1015), 20.0),
    (FirstBoot("first", "present", "cancelled", boottime=1000, rootdir=1020, now=1020), 0.0),
    (FirstBoot("again", "absent", "none", boottime=1000, rootdir=1005, now=1015), 0.0),
])
def test_reboot_window_follows_the_end_of_the_first_boot(status, left):
    assert status.reboot_grace_left() == left


def test_a_first_boot_that_never_ends_is_one_line():
    with pytest.raises(LabError) as err:
        parse_first_boot("ctrl-a", "Password:\r\nbeast-firstboot: setup=first sentinel=stuck reboot=cancelled "
                                   "boottime=1 rootdir=1 now=50\r\n")
    assert "\n" not in str(err.value) and "first boot has not finished after 40 s" in str(err.value)
    with pytest.raises(LabError) as err:
        parse_first_boot("ctrl-a", "Password:\r\nsu: Sorry\r\n")
    assert str(err.value).startswith("ctrl-a: the root setup printed no `beast-firstboot:` line (last line: su: Sorry)")


def test_up_waits_out_the_reboot_window_then_for_ssh_again(tmp_path: Path, monkeypatch):
    provider = VirtualBoxProvider(PAPER, tmp_path / "lab", vboxmanage=lambda argv: "", vbox_api_loader=lambda: None,
                                  host_platform="linux")
    events: list[tuple] = []
    monkeypatch.setattr(provider_module.time, "sleep", lambda seconds: events.append(("sleep", seconds)))
    monkeypatch.setattr(provider, "wait_for_ssh", lambda host, timeout=None: events.append(("ssh", host)))
    provider.first_boot["ctrl-a"] = FirstBoot("first", "absent", "none", boottime=1000, rootdir=1005, now=1015)
    provider.settle_first_boot("ctrl-a")
    assert events == [("sleep", 20.0), ("ssh", "ctrl-a")]
    provider.settle_first_boot("ctrl-a")
    assert len(events) == 2
