"""Environment variables bst reads, checked as the topology is: a bad value is one line naming the variable
and the way out, never a path or an argument with a line break in it, never a value silently ignored."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lab.errors import LabError

VARIABLES = {
    "BEAST_TOPOLOGY": "the topology file of every bst command with --topology, and of the Vagrantfile",
    "BEAST_LAB_DIR": "the lab directory the Vagrantfile and its helper use (bst passes its own)",
    "BEAST_LAB_CACHE": "where guest images and downloads are cached (default $XDG_CACHE_HOME/beast-lab)",
    "BEAST_LAB_ACCEL": "kvm or tcg: decide the accelerator instead of probing KVM",
    "BEAST_BOX": "the Vagrant box of the VirtualBox provider",
    "BEAST_ROOT_PASSWORD": "root's password in the Vagrant box (default vagrant)",
    "BEAST_PYTHON": "the Python the Vagrantfile runs the project with (default python3)",
}
"""Every environment variable the host side reads, and what for: the docs may name only these (a test checks),
and each is read somewhere in the code."""

BOX_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
"""A Vagrant box name as Vagrant Cloud spells one (``freebsd/FreeBSD-10.3-RELEASE``, ``local/freebsd-10.3``)."""


def env_text(name: str) -> str | None:
    """The variable as set (None when unset); LabError when it holds a control character such as a newline."""
    value = os.environ.get(name)
    if value is not None and not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        raise LabError(f"environment variable {name} holds the control character {bad!r}; set it to one line of "
                       f"printable text, or unset it")
    return value


def env_path(name: str, relative_ok: bool = False) -> Path | None:
    """The variable as a path (``~`` expanded), None when unset or empty; a relative path is LabError unless
    ``relative_ok`` (then None: the XDG base directory spec says such a value is ignored)."""
    value = env_text(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        if relative_ok:
            return None
        raise LabError(f"environment variable {name}={value!r} is not an absolute path; set it to one, or unset it")
    return path


def env_choice(name: str, choices: tuple[str, ...]) -> str | None:
    """The variable when it is one of ``choices`` (spelt exactly, as --provider and --stack are), None when
    unset or blank; LabError naming the choices otherwise."""
    value = env_text(name)
    if value is None or not value.strip():
        return None
    if value.strip() not in choices:
        raise LabError(f"environment variable {name}={value!r} is not one of {', '.join(choices)} (lowercase); "
                       f"set it to one of them, or unset it")
    return value.strip()


def env_box_name(name: str) -> str | None:
    """A Vagrant box name from ``name``, None when unset or empty."""
    value = env_text(name)
    if value and not BOX_NAME_RE.fullmatch(value):
        raise LabError(f"environment variable {name}={value!r} is not a Vagrant box name; use letters, digits, "
                       f"'.', '_', '-' and '/', like freebsd/FreeBSD-10.3-RELEASE, or unset it")
    return value or None


def env_topology_path(name: str = "BEAST_TOPOLOGY") -> Path | None:
    """The topology file the variable names (relative to the working directory, as --topology is), None when
    unset or empty; LabError when it names no file, so a typo is never silently the paper's lab."""
    value = env_text(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise LabError(f"environment variable {name}={value!r} is not a topology file; set it to a topology TOML "
                       f"file, or unset it for the paper's lab")
    return path
