"""The FreeBSD 10.3 preparation dialogue against a replayed first boot (tests/fixtures/freebsd/fake_machine.py):
the whole dialogue, and each way it can go wrong ending in one clear line."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.images.freebsd import dialogue
from lab.images.freebsd.console import keystrokes, parse_xp_dump, vga_text_lines
from lab.images.freebsd.dialogue import LINE_LIMIT, MAX_CANON, PreparationDialogue, Waits, preparation_commands

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "freebsd"))
from fake_machine import FakeFreeBSD  # noqa: E402

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH2x3mF0mXv0yq1b1Xv9d0Lr3o0d6m8wQ7jv8x3o4nYb "
       "beast-lab-freebsd")
EVIDENCE = "/cache/freebsd-x.failed/console.log and /cache/freebsd-x.failed/screen.txt"
DEFAULT_WAITS = Waits()


def run(machine: FakeFreeBSD, waits: Waits = DEFAULT_WAITS, stages: list[str] | None = None) -> None:
    PreparationDialogue(machine, KEY, EVIDENCE, stages.append if stages is not None else None, waits).run()


def one_line_error(machine: FakeFreeBSD, waits: Waits = DEFAULT_WAITS) -> str:
    with pytest.raises(LabError) as caught:
        run(machine, waits)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("FreeBSD preparation: ")
    assert message.endswith(f"see {EVIDENCE}")
    return message


def test_the_whole_dialogue_configures_the_image_and_powers_it_off():
    machine = FakeFreeBSD()
    stages: list[str] = []
    run(machine, stages=stages)
    assert stages == ["boot to loader", "loader", "single user", "configure", "power off"]
    assert not machine.running()
    files = machine.files
    rc_conf = files["/etc/rc.conf"]
    assert 'sshd_enable="YES"' in rc_conf and 'sendmail_enable="NONE"' in rc_conf
    active = [line for line in files["/etc/ssh/sshd_config"].splitlines() if line and not line.startswith("#")]
    assert "PermitRootLogin without-password" in active
    assert "PasswordAuthentication no" in active and "ChallengeResponseAuthentication no" in active
    assert files["/root/.ssh/authorized_keys"] == KEY + "\n"
    assert machine.modes == {"/root/.ssh": 0o700, "/root/.ssh/authorized_keys": 0o600}
    assert files["/boot/loader.conf"] == 'console="comconsole"\nautoboot_delay="2"\n'
    assert "/etc/hostid" not in files and "/etc/hostid" in machine.written
    assert machine.commands[-1] == "halt -p"
    assert all(len(line) + 1 <= MAX_CANON for line in machine.commands)


def test_the_management_nic_gets_dhcp_whatever_its_driver_and_no_nic_waits_for_a_lease():
    """vtnet0 (virtio: qemu, and VirtualBox as the Vagrantfile and our box's OVF set NIC 1) by name, any other
    NIC (em0, le0: a VirtualBox NIC 1 of another type) through ifconfig_DEFAULT; the lab's em NICs get their own
    lines later, which rc.conf(5) prefers. The image's IPv6 autoconfiguration line is replaced, not doubled."""
    machine = FakeFreeBSD()
    run(machine)
    nic_lines = [line for line in machine.files["/etc/rc.conf"].splitlines() if line.startswith("ifconfig_")]
    assert sorted(nic_lines) == ['ifconfig_DEFAULT="DHCP"', 'ifconfig_vtnet0="DHCP"']
    assert "SYNCDHCP" not in machine.files["/etc/rc.conf"]


def test_no_menu_on_the_screen_is_one_line_naming_the_wait_and_the_evidence():
    message = one_line_error(FakeFreeBSD(menu_appears=False))
    assert "no loader menu on the screen within 180 s" in message


def test_keys_too_late_let_the_menu_autoboot_and_say_so():
    machine = FakeFreeBSD(autoboot_delay=10)
    slow = Waits()

    class LateMachine:
        """Each key reaches the guest 11 s after it is sent: the countdown ends before the 3 arrives."""

        def __getattr__(self, name):
            return getattr(machine, name)

        def press(self, chord):
            machine.sleep(11)
            machine.press(chord)

    with pytest.raises(LabError) as caught:
        PreparationDialogue(LateMachine(), KEY, EVIDENCE, None, slow).run()
    message = str(caught.value)
    assert "booted multi-user before the keystroke 3" in message and "\n" not in message
    assert ("3",) in machine.ignored_keys


def test_keys_before_the_menu_are_lost():
    machine = FakeFreeBSD(bios_seconds=4)
    machine.press(("3",))
    assert machine.ignored_keys == [("3",)]
    machine.sleep(5)
    assert any("scape to loader prompt" in line for line in machine.screen())


def test_after_comconsole_the_loader_reads_no_keyboard_and_answers_unknown_words():
    machine = FakeFreeBSD()
    machine.sleep(5)
    machine.press(("3",))
    for chord in keystrokes("set console=comconsole\n"):
        machine.press(chord)
    assert machine.read_serial(1) == "OK "
    machine.press(("a",))
    assert machine.ignored_keys == [("a",)]
    machine.write_serial("bogus\r")
    assert machine.read_serial(1) == "bogus\r\nbogus not found\r\nOK "


def test_a_missing_shell_prompt_is_one_line():
    message = one_line_error(FakeFreeBSD(shell_prompt=False))
    assert "no single-user shell prompt (#) within 60 s" in message


def test_a_failing_command_names_it_its_status_and_what_it_said():
    message = one_line_error(FakeFreeBSD(root_dirty=True))
    assert "`fsck -p` failed with status 8" in message
    assert "UNEXPECTED SOFT UPDATE INCONSISTENCY; RUN fsck MANUALLY." in message


def test_the_fake_root_is_read_only_until_mounted_rw(monkeypatch):
    commands = [c for c in preparation_commands(KEY) if c != "mount -u -o rw /"]
    monkeypatch.setattr(dialogue, "preparation_commands", lambda key: commands)
    message = one_line_error(FakeFreeBSD())
    assert f"`sysrc sshd_enable=YES {dialogue.MANAGEMENT_DHCP} sendmail_enable=NONE` failed with status 1" in message
    assert "Read-only file system" in message


def test_a_line_over_max_canon_never_completes(monkeypatch):
    long = "echo " + "x" * 260
    monkeypatch.setattr(PreparationDialogue, "__init__", _init_without_length_check(long))
    message = one_line_error(FakeFreeBSD(), replace(Waits(), command=30))
    assert "no answer to `echo xxx" in message and "within 30 s" in message


def _init_without_length_check(command: str):
    original = PreparationDialogue.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.commands = [command]

    return init


def test_every_line_the_dialogue_types_stays_under_the_limit():
    long_comment_key = KEY + "-" + "c" * 60
    for number, command in enumerate(preparation_commands(long_comment_key)):
        assert len(dialogue.marked(command, number)) <= LINE_LIMIT < MAX_CANON


def test_the_key_check_is_the_sha256_of_the_key_line():
    check = [c for c in preparation_commands(KEY) if c.startswith("test ")][0]
    assert check.endswith(hashlib.sha256((KEY + "\n").encode()).hexdigest())


def test_a_key_with_a_quote_is_refused():
    with pytest.raises(LabError, match="not an OpenSSH public key line"):
        preparation_commands("ssh-ed25519 AAAA it's")


def test_keystrokes_shift_upper_case_and_symbols_and_refuse_the_untypable():
    assert keystrokes('aZ1 :_"\n') == [("a",), ("shift", "z"), ("1",), ("spc",), ("shift", "semicolon"),
                                       ("shift", "minus"), ("shift", "apostrophe"), ("ret",)]
    with pytest.raises(ValueError, match="cannot type"):
        keystrokes("é")


def test_the_xp_dump_parses_to_25_lines_of_text():
    cells = bytearray(b" \x07" * 2000)
    cells[0:4] = b"O\x07K\x07"
    cells[160:162] = b"\xc9\x07"
    dump = "\n".join(
        f"{0xb8000 + i:016x}: " + " ".join(f"{b:#04x}" for b in cells[i:i + 8]) for i in range(0, 4000, 8)
    )
    lines = vga_text_lines(parse_xp_dump(dump))
    assert len(lines) == 25 and lines[0] == "OK" and lines[1] == "\u2554" and lines[2] == ""
    with pytest.raises(ValueError, match="4000 bytes"):
        vga_text_lines(b"ab")
