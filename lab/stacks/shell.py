"""The one way a topology value enters a stack's shell text: quoted where the command is built, as pyinfra's
StringCommand does, so that no value can become shell syntax even if the loader's rules let it through.

Safe values come out bare (``quote("ctrl-a_m0") == "ctrl-a_m0"``), so plans for ordinary names read as the
commands an administrator would type. A value embedded in a larger word (``name=<value>``, a path, a grep
pattern, an awk program) is quoted as that whole word; inside an awk program it is first written as an awk
string literal, so it cannot end the string either.
"""

from __future__ import annotations

import shlex


def quote(word: object) -> str:
    """One shell word holding exactly ``word``."""
    return shlex.quote(str(word))


def words(*parts: object) -> str:
    """Shell words for ``parts``, each quoted: ``words("zpool", "export", pool)``."""
    return " ".join(quote(part) for part in parts)


def dquote(value: object) -> str:
    """``value`` as a double-quoted shell string (``"ctrl-a"``): for text that goes on with an expansion
    inside the same quotes, or where a plan has always shown double quotes."""
    text = str(value)
    for special in ("\\", '"', "$", "`"):
        text = text.replace(special, "\\" + special)
    return f'"{text}"'


def awk_string(value: object) -> str:
    """An awk string literal holding exactly ``value`` (quote the whole program with ``quote`` afterwards)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
