"""What goes over SSH: a command as the host's login shell must receive it, and a plan as those strings.

sshd runs the command with the user's login shell (``$SHELL -c CMD``). On FreeBSD 10.3 root's shell is
/bin/csh (tcsh 6.18.01), which rejects or rewrites much of sh: ``$(...)``, ``2>&1``, ``!`` even inside
quotes, ``i=0``, quotes spanning lines, heredocs. ``through_csh`` sends the sh script base64-encoded on one
line that csh only splits into words: ``printf %s B64 | b64decode -r | /bin/sh``. The base64 alphabet
(A-Z a-z 0-9 + / =) holds nothing csh expands, and tcsh 6.18.01's lexer keeps words in growing buffers
(sh.lex.c ``word()``; ``ERR_WTOOLONG`` is never raised), so a long word is fine. ``b64decode -r``
(uudecode.c ``base64_decode``) decodes raw base64 to stdout, carrying what is left of a 1024-byte read
over to the next one, so one long line decodes whole. The script runs as one ``{ ...; } </dev/null``
group: sh parses all of it before it runs anything, and no command can read the rest of the script from
the pipe.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from lab.errors import LabError
from lab.executor import files_match_command, write_file_command
from lab.plan import Plan

MAX_WIRE_CHARS = 128 * 1024
"""Well under FreeBSD's ARG_MAX (262144 bytes for the argv and environment csh is started with)."""

Wire = Callable[[str], str]


def as_is(cmd: str) -> str:
    """For hosts whose login shell is sh-compatible (the linux stack's bash)."""
    return cmd


def through_csh(cmd: str) -> str:
    """One line for ``csh -c`` that hands ``cmd`` to /bin/sh unchanged; see the module docstring."""
    script = f"{{ {cmd}\n}} </dev/null\n"
    encoded = base64.b64encode(script.encode()).decode()
    line = f"printf %s {encoded} | b64decode -r | /bin/sh"
    if len(line) > MAX_WIRE_CHARS:
        raise LabError(f"a command of {len(cmd)} characters is too long to send to a csh login shell "
                       f"({len(line)} on the wire, at most {MAX_WIRE_CHARS}): `{cmd[:80]}...`")
    return line


def plan_strings(plan: Plan, wire: Wire = as_is) -> dict[str, list[str]]:
    """Per host, every string the executor can send, in its order (each through ``wire``): for each step
    the files check (when it writes files), the check, one write per file, the commands, the check again
    for a reboot step (polled until it passes), then the verify. On a fresh host a failing files check
    skips the check; on a host where the step is done only the checks are sent."""
    sent: dict[str, list[str]] = {}
    for host, steps in plan.items():
        strings = sent.setdefault(host, [])
        for step in steps:
            files_check = files_match_command(step.files)
            commands = [
                *([files_check] if files_check else []),
                *([step.check] if step.check else []),
                *(write_file_command(path, content) for path, content in step.files.items()),
                *step.commands,
                *([step.check] if step.reboot and step.check else []),
                *([step.verify] if step.verify else []),
            ]
            strings += [wire(cmd) for cmd in commands]
    return sent
