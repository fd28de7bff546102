"""Text from a run folder, a manifest or a guest, made safe to print: a terminal reads control characters as
commands (ESC starts a colour, a title change or a cursor move), so they are shown as escapes instead."""

from __future__ import annotations

import re

KEPT = "\n\t"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 controls but newline and tab, DEL, and the C1 controls (U+0080-U+009F; U+009B is a one-character CSI)."""


def printable(text: object) -> str:
    """``text`` as a string with every control character but newline and tab written as ``\\xNN``."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))
