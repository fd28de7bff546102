"""The unattended first boot that prepares FreeBSD 10.3's official VM image: keys at the loader menu, then the
serial console in single-user mode. Pure: it talks to a ``Machine`` (the real qemu in console.py, a replayed
transcript in the tests) and knows nothing of processes or files.

Facts it relies on (FreeBSD 10.3 sources; releng/10.3 files quoted from release/10.4.0, same revisions):
- sys/boot/forth/menu.rc: main menu item 3 is "[Esc]ape to loader prompt" (``goto_prompt``), key "3" or Esc;
  ``menu_timeout_command="boot"``: the menu boots multi-user when its countdown ends.
- sys/boot/forth/menu.4th: the countdown is 10 s by default ("Autoboot in N seconds. [Space] to pause" at
  column 4, row 23); any key stops it.
- sys/boot/common/interp.c: the prompt is ``${interpret}`` = "OK" followed by a space; interp_forth.c and
  ficl: an unknown word answers "<word> not found".
- sys/boot/common/console.c: ``set console=comconsole`` moves the loader's input and output to the serial
  port; the kernel then gets RB_SERIAL and uses it as its console (libi386/bootinfo.c).
- sbin/init/init.c: single-user asks "Enter full pathname of shell or RETURN for /bin/sh: "; /bin/sh's
  prompt for root is "# ".
- sbin/reboot/Makefile: no poweroff(8) in 10.x; ``halt -p`` powers off (reboot.c, RB_POWEROFF).
- sys/sys/syslimits.h: MAX_CANON is 255 bytes, so every line typed into the shell stays far below it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lab.errors import LabError
from lab.images.freebsd.console import keystrokes

MAX_CANON = 255
LINE_LIMIT = 200
"""The longest line the dialogue types into the single-user shell (marker included); MAX_CANON is the hard
limit beyond which FreeBSD's tty drops input."""
KEY_CHUNK = 64
MENU_MARKERS = ("Autoboot in", "scape to loader prompt")
LOADER_COMMAND = "set console=comconsole"
SINGLE_USER_PROMPT = "Enter full pathname of shell or RETURN for /bin/sh:"
STAGES = ("boot to loader", "loader", "single user", "configure", "power off")
POWER_OFF = "halt -p"
"""FreeBSD 10.3 has no poweroff(8): sbin/reboot/Makefile links only halt, fastboot and fasthalt to reboot."""

SSHD_SETTINGS = (
    "PermitRootLogin without-password",
    "PasswordAuthentication no",
    "ChallengeResponseAuthentication no",
    "UseDNS no",
)
"""Root's password is empty on the official image: root logs in by key only (sshd_config(5) of OpenSSH 7.2,
FreeBSD 10.3's; first match wins, so the image's own active lines for these keywords are deleted first)."""
LOADER_SETTINGS = ('console="comconsole"', 'autoboot_delay="2"')
MANAGEMENT_DHCP = "ifconfig_DEFAULT=DHCP ifconfig_vtnet0=DHCP"
"""The management NIC asks DHCP whatever its driver's name: vtnet0 where the provider makes it virtio (qemu, and
VirtualBox through the Vagrantfile and the box's own OVF), and through ``ifconfig_DEFAULT`` any other (em0 or le0
when a VirtualBox user changes NIC 1's type). ``DHCP`` rather than ``SYNCDHCP``: boot never waits for a lease. The
lab NICs get their own ``ifconfig_emN`` lines (the stack's rc.conf.local; ``up`` from the VirtualBox first boot),
which rc.conf(5) prefers to ``ifconfig_DEFAULT``. The image's own ``DHCP inet6 accept_rtadv`` loses its IPv6
autoconfiguration, which no part of the lab uses."""


class Machine(Protocol):
    """What the dialogue needs of a booting machine."""

    def screen(self) -> list[str]: ...
    def press(self, chord: tuple[str, ...]) -> None: ...
    def read_serial(self, timeout: float) -> str: ...
    def write_serial(self, text: str) -> None: ...
    def running(self) -> bool: ...
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Waits:
    """Bounds, in seconds, of each wait (generous for TCG: the kernel alone takes minutes to boot there)."""

    menu: float = 180
    loader_prompt: float = 30
    echo: float = 15
    serial_prompt: float = 20
    single_user: float = 600
    shell_prompt: float = 60
    command: float = 120
    power_off: float = 180


def key_lines(public_key: str, path: str = "/root/.ssh/authorized_keys") -> list[str]:
    """The public key written in short appends (printf '%s'), each far below MAX_CANON."""
    key = public_key.strip()
    if not re.fullmatch(r"[A-Za-z0-9+/=@._: -]+", key) or not key.startswith("ssh-"):
        raise LabError(f"not an OpenSSH public key line: {key[:40]!r}: give the image's ssh-ed25519 .pub text")
    return [f"printf '%s' '{key[i:i + KEY_CHUNK]}' >> {path}" for i in range(0, len(key), KEY_CHUNK)]


def preparation_commands(public_key: str) -> list[str]:
    """The single-user shell's commands, in order; each must exit 0."""
    key = public_key.strip()
    key_hash = hashlib.sha256((key + "\n").encode()).hexdigest()
    sshd_keywords = " ".join(f"-e '/^{s.split()[0]}/d'" for s in SSHD_SETTINGS)
    quoted = " ".join(f"'{s}'" for s in SSHD_SETTINGS)
    return [
        "fsck -p",
        "mount -u -o rw /",
        f"sysrc sshd_enable=YES {MANAGEMENT_DHCP} sendmail_enable=NONE",
        f"sed -i '' {sshd_keywords} /etc/ssh/sshd_config",
        f"printf '%s\\n' {quoted} >> /etc/ssh/sshd_config",
        "mkdir -p /root/.ssh && chmod 700 /root/.ssh && : > /root/.ssh/authorized_keys",
        *key_lines(key),
        "echo >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys",
        f'test "$(sha256 -q /root/.ssh/authorized_keys)" = {key_hash}',
        "printf '%s\\n' " + " ".join(f"'{s}'" for s in LOADER_SETTINGS) + " >> /boot/loader.conf",
        "rm -f /etc/hostid /etc/ssh/ssh_host_* /firstboot",
        "sync",
    ]


def marked(command: str, number: int) -> str:
    """The command followed by an echo of its status: the tty's echo of the line shows ``$?``, the output a
    number, so only the output matches ``status_pattern``."""
    return f"{command}; echo BEAST.{number}.$?."


def status_pattern(number: int) -> re.Pattern[str]:
    return re.compile(rf"BEAST\.{number}\.(\d+)\.")


class PreparationDialogue:
    """Drives one preparation boot; every wait is bounded and fails with one line naming the evidence."""

    def __init__(self, machine: Machine, public_key: str, evidence: str,
                 on_stage: Callable[[str], None] | None = None, waits: Waits = Waits()):
        self.machine, self.evidence, self.waits = machine, evidence, waits
        self.commands = preparation_commands(public_key)
        for number, command in enumerate(self.commands):
            if len(marked(command, number)) > LINE_LIMIT:
                raise LabError(f"FreeBSD preparation: command {number} is over {LINE_LIMIT} characters: split it")
        self.on_stage = on_stage or (lambda stage: None)
        self.serial = ""
        self.mark = 0

    def run(self) -> None:
        self.on_stage("boot to loader")
        self._wait_for_menu()
        self.on_stage("loader")
        self.machine.press(("3",))
        self._wait_for_loader_prompt()
        self._type_at_loader(LOADER_COMMAND)
        self._expect_serial(re.compile(r"(?:^|[\r\n])OK $"), "loader OK prompt on the serial console "
                            f"after `{LOADER_COMMAND}`", self.waits.serial_prompt, at_end=True)
        self.on_stage("single user")
        self.machine.write_serial("boot -s\r")
        self._expect_serial(re.compile(re.escape(SINGLE_USER_PROMPT)), "single-user shell question "
                            f"({SINGLE_USER_PROMPT!r}) after `boot -s`", self.waits.single_user)
        self.machine.write_serial("\r")
        self._expect_shell_prompt("single-user shell prompt (#)")
        self.on_stage("configure")
        for number, command in enumerate(self.commands):
            self._run_command(command, number)
        self.on_stage("power off")
        self.machine.write_serial(f"{POWER_OFF}\r")
        self._wait_for_exit()

    def _fail(self, what: str) -> LabError:
        return LabError(f"FreeBSD preparation: {what}; see {self.evidence}")

    def _wait_for_menu(self) -> None:
        deadline = self.machine.now() + self.waits.menu
        while self.machine.now() < deadline:
            self._check_running("the loader menu")
            if any(marker in line for line in self.machine.screen() for marker in MENU_MARKERS):
                return
            self.machine.sleep(0.5)
        raise self._fail(f"no loader menu on the screen within {self.waits.menu:.0f} s")

    def _wait_for_loader_prompt(self) -> None:
        deadline = self.machine.now() + self.waits.loader_prompt
        while self.machine.now() < deadline:
            self._check_running("the loader prompt")
            lines = [line for line in self.machine.screen() if line.strip()]
            if any(line.startswith("Booting...") for line in lines):
                raise self._fail("the loader menu's countdown ended and it booted multi-user before the "
                                 "keystroke 3 (escape to loader prompt) reached it")
            if lines and lines[-1].rstrip() == "OK":
                return
            self.machine.sleep(0.5)
        raise self._fail(f"no loader prompt (OK) on the screen within {self.waits.loader_prompt:.0f} s of "
                         f"pressing 3 at the menu")

    def _type_at_loader(self, text: str) -> None:
        """Type ``text``, see the loader echo it on the screen's last line, then press Enter."""
        for chord in keystrokes(text):
            self.machine.press(chord)
        deadline = self.machine.now() + self.waits.echo
        last = ""
        while self.machine.now() < deadline:
            lines = [line for line in self.machine.screen() if line.strip()]
            last = lines[-1] if lines else ""
            if last.rstrip() == f"OK {text}":
                self.machine.press(("ret",))
                return
            self.machine.sleep(0.5)
        raise self._fail(f"the loader did not echo `{text}` within {self.waits.echo:.0f} s "
                         f"(its last screen line: {last.strip()!r})")

    def _read(self, timeout: float) -> None:
        self.serial += self.machine.read_serial(timeout)

    def _expect_serial(self, pattern: re.Pattern[str], what: str, seconds: float,
                       at_end: bool = False) -> re.Match[str]:
        deadline = self.machine.now() + seconds
        while True:
            tail = self.serial[self.mark:]
            match = pattern.search(tail)
            if match and (not at_end or match.end() == len(tail)):
                self.mark += match.end()
                return match
            if self.machine.now() >= deadline:
                raise self._fail(f"no {what} within {seconds:.0f} s")
            self._check_running(what)
            self._read(min(1.0, max(deadline - self.machine.now(), 0.01)))

    def _expect_shell_prompt(self, what: str) -> None:
        self._expect_serial(re.compile(r"# $"), what, self.waits.shell_prompt, at_end=True)

    def _run_command(self, command: str, number: int) -> None:
        start = self.mark
        self.machine.write_serial(marked(command, number) + "\r")
        match = self._expect_serial(status_pattern(number), f"answer to `{command}`", self.waits.command)
        status = int(match.group(1))
        if status != 0:
            output = self.serial[start:self.mark - len(match.group(0))].replace("\r", "").splitlines()
            detail = [line.strip() for line in output if line.strip() and "BEAST." not in line]
            said = f": {detail[-1]}" if detail else ""
            raise self._fail(f"`{command}` failed with status {status} in the single-user shell{said}")
        self._expect_shell_prompt(f"# prompt after `{command}`")

    def _wait_for_exit(self) -> None:
        deadline = self.machine.now() + self.waits.power_off
        while self.machine.running():
            if self.machine.now() >= deadline:
                raise self._fail(f"the guest did not power off within {self.waits.power_off:.0f} s of `{POWER_OFF}`")
            self._read(1.0)

    def _check_running(self, what: str) -> None:
        if not self.machine.running():
            raise self._fail(f"qemu exited while waiting for {what}")
