"""The preparation boot's hands and eyes on a real qemu: keys over QMP ``send-key``, the VGA text screen read
through QMP, the serial console through a unix socket, and the qemu process itself.

The loader and its beastie menu draw in VGA text mode, so the screen is the 80x25 cells of character and
attribute bytes at physical 0xB8000, read with the monitor's ``xp /4000bx 0xb8000`` (proved on this
machine's QEMU 7.2 against SeaBIOS's "No bootable device." screen: tests/test_freebsd_prepare.py).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError

if TYPE_CHECKING:
    from lab.qemu_leaf.qmp import QmpClient

VGA_TEXT_BASE = 0xB8000
SCREEN_COLUMNS = 80
SCREEN_ROWS = 25
XP_SCREEN_COMMAND = f"xp /{SCREEN_COLUMNS * SCREEN_ROWS * 2}bx {VGA_TEXT_BASE:#x}"

_PLAIN_KEYS = {
    " ": "spc", "-": "minus", "=": "equal", "[": "bracket_left", "]": "bracket_right", ";": "semicolon",
    "'": "apostrophe", "`": "grave_accent", "\\": "backslash", ",": "comma", ".": "dot", "/": "slash",
    "\n": "ret", "\t": "tab",
}
_SHIFTED_KEYS = {
    "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9", ")": "0",
    "_": "minus", "+": "equal", "{": "bracket_left", "}": "bracket_right", ":": "semicolon",
    '"': "apostrophe", "~": "grave_accent", "|": "backslash", "<": "comma", ">": "dot", "?": "slash",
}


def keystrokes(text: str) -> list[tuple[str, ...]]:
    """The QMP qcode chords that type ``text`` on a US keyboard ("\\n" is Enter); ValueError on a character
    no key types (QEMU's qcode names: qapi/ui.json ``QKeyCode``)."""
    chords: list[tuple[str, ...]] = []
    for char in text:
        if "a" <= char <= "z" or "0" <= char <= "9":
            chords.append((char,))
        elif "A" <= char <= "Z":
            chords.append(("shift", char.lower()))
        elif char in _PLAIN_KEYS:
            chords.append((_PLAIN_KEYS[char],))
        elif char in _SHIFTED_KEYS:
            chords.append(("shift", _SHIFTED_KEYS[char]))
        else:
            raise ValueError(f"cannot type {char!r} on the guest's keyboard: use printable ASCII only")
    return chords


def parse_xp_dump(text: str) -> bytes:
    """The bytes of an HMP ``xp /Nbx ADDR`` dump ("00000000000b8000: 0x53 0x07 ...")."""
    data = bytearray()
    for line in text.splitlines():
        address, sep, values = line.partition(":")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]+", address.strip()):
            continue
        data.extend(int(v, 16) for v in values.split())
    return bytes(data)


def vga_text_lines(cells: bytes) -> list[str]:
    """The 25 lines of an 80x25 VGA text buffer (character, attribute, ...), in code page 437, right-trimmed."""
    needed = SCREEN_COLUMNS * SCREEN_ROWS * 2
    if len(cells) < needed:
        raise ValueError(f"a VGA text screen is {needed} bytes, got {len(cells)}")
    chars = bytes(cells[0:needed:2]).replace(b"\x00", b" ")
    text = chars.decode("cp437")
    return [text[r * SCREEN_COLUMNS:(r + 1) * SCREEN_COLUMNS].rstrip() for r in range(SCREEN_ROWS)]


def read_screen(qmp: QmpClient) -> list[str]:
    out = qmp.execute("human-monitor-command", {"command-line": XP_SCREEN_COMMAND})
    return vga_text_lines(parse_xp_dump(out))


def send_chord(qmp: QmpClient, chord: tuple[str, ...]) -> None:
    qmp.execute("send-key", {"keys": [{"type": "qcode", "data": key} for key in chord]})


class QemuMachine:
    """One qemu process this object starts and stops by its own PID, seen through QMP and the serial socket.

    Implements the machine interface of dialogue.py. qemu's chardev ``logfile=`` keeps everything the guest
    wrote on the serial port in ``console_log``.
    """

    KEY_GAP_SECONDS = 0.05
    """Between keystrokes: the BIOS keyboard buffer the loader polls holds 15 keys."""

    def __init__(self, argv: list[str], qmp_path: Path, serial_path: Path, console_log: Path, qemu_log: Path):
        self.argv, self.qmp_path, self.serial_path = argv, qmp_path, serial_path
        self.console_log, self.qemu_log = console_log, qemu_log
        self.process: subprocess.Popen[bytes] | None = None
        self.qmp: QmpClient | None = None
        self.serial: socket.socket | None = None
        self.last_screen: list[str] = []

    def start(self, wait_seconds: float = 15.0) -> None:
        from lab.qemu_leaf.qmp import QmpClient, QmpError

        with open(self.qemu_log, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            if self.process.poll() is not None:
                detail = (self.qemu_log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
                raise LabError(f"qemu for the FreeBSD preparation exited at once: {detail} (see {self.qemu_log})")
            if self.qmp_path.exists() and self.serial_path.exists():
                try:
                    self.qmp = QmpClient(self.qmp_path)
                    self.qmp.connect()
                    self.serial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self.serial.connect(str(self.serial_path))
                    return
                except (QmpError, OSError):
                    self.qmp = self.serial = None
            if time.monotonic() > deadline:
                raise LabError(f"qemu for the FreeBSD preparation opened no monitor/serial socket within "
                               f"{wait_seconds:.0f} s (see {self.qemu_log})")
            time.sleep(0.2)

    def stop(self) -> None:
        """Close the sockets; end the process if it still runs (SIGTERM, then SIGKILL), and reap it."""
        if self.serial is not None:
            self.serial.close()
            self.serial = None
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def screen(self) -> list[str]:
        assert self.qmp is not None
        self.last_screen = read_screen(self.qmp)
        return self.last_screen

    def press(self, chord: tuple[str, ...]) -> None:
        assert self.qmp is not None
        send_chord(self.qmp, chord)
        time.sleep(self.KEY_GAP_SECONDS)

    def read_serial(self, timeout: float) -> str:
        assert self.serial is not None
        self.serial.settimeout(max(timeout, 0.01))
        try:
            data = self.serial.recv(65536)
        except OSError:
            return ""
        if not data:
            time.sleep(min(timeout, 0.2))
        return data.decode("utf-8", errors="replace")

    def write_serial(self, text: str) -> None:
        assert self.serial is not None
        self.serial.sendall(text.encode())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
