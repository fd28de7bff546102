"""Parsers for FreeBSD GEOM multipath: `gmultipath status` and `gmultipath list`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import ParseError
from lab.parsers._text import require_text

GMULTIPATH_STATES = frozenset({"OPTIMAL", "DEGRADED", "BROKEN"})


@dataclass(frozen=True)
class GmultipathComponent:
    """A path of a multipath device; `state` is ACTIVE, PASSIVE, READ or FAIL (None if none printed)."""

    name: str
    state: str | None


@dataclass(frozen=True)
class GmultipathDevice:
    name: str
    status: str
    components: tuple[GmultipathComponent, ...]

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components if c.state == "ACTIVE")


_STATUS_HEADER = re.compile(r"^\s*Name\s+Status\s+Components\s*$")
_COMPONENT = re.compile(r"^(?P<name>\S+)(?: \((?P<state>[A-Z]+)\))?$")


def _component(text: str, tool: str, line: str) -> GmultipathComponent:
    match = _COMPONENT.match(text.strip())
    if match is None:
        raise ParseError(f"{tool}: component {text.strip()!r} in {line.strip()!r} is not 'daN (STATE)'")
    return GmultipathComponent(name=match["name"], state=match["state"])


def parse_gmultipath_status(text: str) -> list[GmultipathDevice]:
    """Parse `gmultipath status`: a row per device, continuation rows for its further components."""
    tool = "gmultipath status"
    require_text(text, tool=tool)
    lines = [line for line in text.splitlines() if line.strip()]
    if not _STATUS_HEADER.match(lines[0]):
        raise ParseError(f"{tool}: first line {lines[0].strip()!r} is not the 'Name  Status  Components' header")
    devices: list[tuple[str, str, list[GmultipathComponent]]] = []
    for line in lines[1:]:
        words = line.split(maxsplit=2)
        if len(words) == 3 and words[1] in GMULTIPATH_STATES:
            devices.append((words[0], words[1], [_component(words[2], tool, line)]))
        elif devices and line[0].isspace():
            devices[-1][2].append(_component(line, tool, line))
        else:
            raise ParseError(f"{tool}: row {line.strip()!r} is neither 'name STATUS component' nor a continuation")
    return [GmultipathDevice(name=n, status=s, components=tuple(c)) for n, s, c in devices]


@dataclass(frozen=True)
class GeomProvider:
    name: str
    fields: dict[str, str]


@dataclass(frozen=True)
class GmultipathGeom:
    """One `Geom name:` block of `gmultipath list`; `consumers` are the paths with their State."""

    name: str
    fields: dict[str, str]
    providers: tuple[GeomProvider, ...]
    consumers: tuple[GeomProvider, ...]

    @property
    def state(self) -> str | None:
        return self.fields.get("State")


def parse_gmultipath_list(text: str) -> list[GmultipathGeom]:
    """Parse `gmultipath list` (the generic `geom list` layout)."""
    tool = "gmultipath list"
    require_text(text, tool=tool)
    geoms: list[dict] = []
    section = "geom"
    for line in text.splitlines():
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("Geom name:"):
            geoms.append({"name": stripped.partition(":")[2].strip(), "fields": {}, "providers": [], "consumers": []})
            section = "geom"
            continue
        if not geoms:
            raise ParseError(f"{tool}: expected 'Geom name:' first, got {stripped!r}")
        geom = geoms[-1]
        if stripped in ("Providers:", "Consumers:"):
            section = stripped[:-1].lower()
            continue
        if match := re.match(r"^\d+\. Name: (?P<name>.+)$", stripped):
            if section == "geom":
                raise ParseError(f"{tool}: numbered entry {stripped!r} outside Providers/Consumers")
            geom[section].append({"name": match["name"].strip(), "fields": {}})
            continue
        key, colon, value = stripped.partition(":")
        if not colon:
            raise ParseError(f"{tool}: line {stripped!r} is not 'Key: value'")
        target = geom["fields"] if section == "geom" else geom[section][-1]["fields"]
        target[key.strip()] = value.strip()
    return [
        GmultipathGeom(
            name=g["name"], fields=g["fields"],
            providers=tuple(GeomProvider(p["name"], p["fields"]) for p in g["providers"]),
            consumers=tuple(GeomProvider(c["name"], c["fields"]) for c in g["consumers"]),
        )
        for g in geoms
    ]
