"""Parsers for device-mapper multipath: `multipath -ll`, and `dmsetup table` / `dmsetup status`
lines of the `multipath` target (the kernel's view, which does not depend on multipathd)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lab.errors import ParseError
from lab.parsers._text import require_text

T = TypeVar("T")


@dataclass(frozen=True)
class MultipathPath:
    """One path row: `3:0:0:1 sdb 8:16 active ready running`."""

    hctl: str
    dev: str
    dev_t: str
    dm_state: str
    path_state: str
    online_state: str


@dataclass(frozen=True)
class PathGroup:
    policy: str
    prio: int | None
    status: str
    paths: tuple[MultipathPath, ...]


@dataclass(frozen=True)
class MultipathMap:
    name: str
    wwid: str
    dm: str
    vendor: str
    product: str
    size: str | None
    features: str | None
    hwhandler: str | None
    wp: str | None
    groups: tuple[PathGroup, ...]

    @property
    def paths(self) -> tuple[MultipathPath, ...]:
        return tuple(path for group in self.groups for path in group.paths)

    @property
    def active_group(self) -> PathGroup | None:
        return next((group for group in self.groups if group.status == "active"), None)


_MAP_HEADER = re.compile(r"^(?:(?:create|reload|switchpg|rename|reject): )?(?P<head>\S.*?) (?P<dm>dm-\d+) (?P<vp>.*)$")
_MAP_ATTRS = re.compile(r"(size|features|hwhandler|wp)=('[^']*'|\S+)")
_GROUP_LINE = re.compile(r"^[|`\s-]*\+- policy='(?P<policy>[^']*)' prio=(?P<prio>\S+) status=(?P<status>\S+)\s*$")
_PATH_LINE = re.compile(
    r"^[|`\s]*[|`]- (?P<hctl>\d+:\d+:\d+:\d+|#:#:#:#)\s+(?P<dev>\S+)\s+(?P<dev_t>\d+:\d+|#:#)\s+(?P<rest>.+)$"
)


def _new_map(match: re.Match, tool: str) -> dict:
    head = match["head"]
    alias = re.match(r"^(?P<name>\S+) \((?P<wwid>[^)]*)\)$", head)
    name, wwid = (alias["name"], alias["wwid"]) if alias else (head, head)
    vendor, _, product = match["vp"].partition(",")
    return {
        "name": name, "wwid": wwid, "dm": match["dm"], "vendor": vendor.strip(), "product": product.strip(),
        "size": None, "features": None, "hwhandler": None, "wp": None, "groups": [],
    }


def _freeze_map(fields: dict) -> MultipathMap:
    groups = tuple(
        PathGroup(policy=g["policy"], prio=g["prio"], status=g["status"], paths=tuple(g["paths"]))
        for g in fields["groups"]
    )
    return MultipathMap(**{**fields, "groups": groups})


def parse_multipath_ll(text: str) -> list[MultipathMap]:
    """Parse `multipath -ll` / `multipath -l` (multipath-tools 0.4.9 and later); empty output gives []."""
    tool = "multipath -ll"
    if text is None:
        require_text(text, tool=tool)
    maps: list[dict] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if maps and line.startswith("size="):
            for key, value in _MAP_ATTRS.findall(line):
                maps[-1][key] = value.strip("'")
            continue
        if group := _GROUP_LINE.match(line):
            if not maps:
                raise ParseError(f"{tool}: path group line {line.strip()!r} before any map header")
            prio = group["prio"]
            maps[-1]["groups"].append(
                {"policy": group["policy"], "prio": int(prio) if prio.lstrip("-").isdigit() else None,
                 "status": group["status"], "paths": []}
            )
            continue
        if path := _PATH_LINE.match(line):
            if not maps or not maps[-1]["groups"]:
                raise ParseError(f"{tool}: path line {line.strip()!r} outside any path group")
            states = path["rest"].split()
            if len(states) < 3:
                raise ParseError(f"{tool}: path line {line.strip()!r} lacks dm, checker and online states")
            maps[-1]["groups"][-1]["paths"].append(
                MultipathPath(
                    hctl=path["hctl"], dev=path["dev"], dev_t=path["dev_t"], dm_state=states[0],
                    path_state=" ".join(states[1:-1]), online_state=states[-1],
                )
            )
            continue
        if header := _MAP_HEADER.match(line):
            maps.append(_new_map(header, tool))
            continue
        raise ParseError(f"{tool}: unexpected line {line.strip()!r}; is this `multipath -ll` output?")
    return [_freeze_map(fields) for fields in maps]


@dataclass(frozen=True)
class TablePath:
    dev: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class TableGroup:
    selector: str
    selector_args: tuple[str, ...]
    paths: tuple[TablePath, ...]


@dataclass(frozen=True)
class TargetLine:
    """What every device-mapper target line starts with: `[name:] start length`; `name` is set in the
    `name: ...` form (several maps listed at once)."""

    name: str | None
    start: int
    length: int


@dataclass(frozen=True)
class MultipathTable(TargetLine):
    """A `multipath` target line of `dmsetup table`."""

    features: tuple[str, ...]
    hw_handler: tuple[str, ...]
    initial_group: int
    groups: tuple[TableGroup, ...]


@dataclass(frozen=True)
class StatusPath:
    dev: str
    active: bool
    fail_count: int
    selector_status: tuple[str, ...]


@dataclass(frozen=True)
class StatusGroup:
    """`state` is A (active, in use), E (enabled) or D (disabled, bypassed)."""

    state: str
    paths: tuple[StatusPath, ...]


@dataclass(frozen=True)
class MultipathStatus(TargetLine):
    """A `multipath` target line of `dmsetup status`."""

    queue_io: int | None
    pg_init_count: int | None
    features: tuple[str, ...]
    hw_handler_status: tuple[str, ...]
    next_group: int
    groups: tuple[StatusGroup, ...]

    @property
    def paths(self) -> tuple[StatusPath, ...]:
        return tuple(path for group in self.groups for path in group.paths)


class _Words:
    def __init__(self, words: list[str], tool: str, line: str):
        self.words, self.position, self.tool, self.line = words, 0, tool, line

    def take(self, what: str) -> str:
        if self.position >= len(self.words):
            raise ParseError(f"{self.tool}: line ends before the {what}: {self.line!r}")
        word = self.words[self.position]
        self.position += 1
        return word

    def take_int(self, what: str) -> int:
        word = self.take(what)
        if not word.isdigit():
            raise ParseError(f"{self.tool}: expected the {what} (a number), got {word!r} in {self.line!r}")
        return int(word)

    def take_counted(self, what: str) -> tuple[str, ...]:
        return tuple(self.take(what) for _ in range(self.take_int(f"number of {what}")))

    def finish(self) -> None:
        if self.position != len(self.words):
            extra = " ".join(self.words[self.position:])
            raise ParseError(f"{self.tool}: unexpected trailing words {extra!r} in {self.line!r}")


def _split_target_line(line: str, tool: str) -> tuple[str | None, int, int, list[str]]:
    name = None
    words = line.split()
    if words and words[0].endswith(":"):
        name = words.pop(0)[:-1]
    if len(words) < 3 or not words[0].isdigit() or not words[1].isdigit():
        raise ParseError(f"{tool}: expected '[name:] start length multipath ...', got {line.strip()!r}")
    if words[2] != "multipath":
        raise ParseError(f"{tool}: target of {line.strip()!r} is {words[2]!r}, not 'multipath'")
    return name, int(words[0]), int(words[1]), words[3:]


def parse_multipath_table_params(params: str, *, name: str | None = None, start: int = 0,
                                 length: int = 0) -> MultipathTable:
    """Parse the parameters of a `multipath` table line (everything after the word `multipath`)."""
    tool = "dmsetup table"
    words = _Words(params.split(), tool, params.strip())
    features = words.take_counted("feature args")
    hw_handler = words.take_counted("hardware handler args")
    group_count = words.take_int("number of priority groups")
    initial_group = words.take_int("initial priority group")
    groups = []
    for _ in range(group_count):
        selector = words.take("path selector")
        selector_args = words.take_counted("path selector args")
        path_count = words.take_int("number of paths")
        path_arg_count = words.take_int("number of path args")
        paths = tuple(
            TablePath(dev=words.take("path device"), args=tuple(words.take("path arg") for _ in range(path_arg_count)))
            for _ in range(path_count)
        )
        groups.append(TableGroup(selector=selector, selector_args=selector_args, paths=paths))
    words.finish()
    return MultipathTable(name=name, start=start, length=length, features=features, hw_handler=hw_handler,
                          initial_group=initial_group, groups=tuple(groups))


def parse_multipath_status_params(params: str, *, name: str | None = None, start: int = 0,
                                  length: int = 0) -> MultipathStatus:
    """Parse the status words of a `multipath` target (everything after the word `multipath`)."""
    tool = "dmsetup status"
    words = _Words(params.split(), tool, params.strip())
    features = words.take_counted("feature status args")
    queue_io = int(features[0]) if len(features) >= 1 and features[0].isdigit() else None
    pg_init_count = int(features[1]) if len(features) >= 2 and features[1].isdigit() else None
    hw_handler_status = words.take_counted("hardware handler status args")
    group_count = words.take_int("number of priority groups")
    next_group = words.take_int("next priority group")
    groups = []
    for _ in range(group_count):
        state = words.take("priority group state")
        if state not in ("A", "E", "D"):
            raise ParseError(f"{tool}: priority group state {state!r} is not A, E or D in {params.strip()!r}")
        words.take_counted("priority group status args")
        path_count = words.take_int("number of paths")
        selector_arg_count = words.take_int("number of selector status args")
        paths = []
        for _ in range(path_count):
            dev = words.take("path device")
            flag = words.take("path state")
            if flag not in ("A", "F"):
                raise ParseError(f"{tool}: path {dev} state {flag!r} is not A or F in {params.strip()!r}")
            paths.append(StatusPath(dev=dev, active=flag == "A", fail_count=words.take_int("fail count"),
                                    selector_status=tuple(words.take("selector status")
                                                          for _ in range(selector_arg_count))))
        groups.append(StatusGroup(state=state, paths=tuple(paths)))
    words.finish()
    return MultipathStatus(name=name, start=start, length=length, queue_io=queue_io, pg_init_count=pg_init_count,
                           features=features, hw_handler_status=hw_handler_status, next_group=next_group,
                           groups=tuple(groups))


def _parse_target_lines(text: str, tool: str, parse_params: Callable[..., T]) -> list[T]:
    """Each non-blank `[name:] start length multipath PARAMS` line of ``tool``'s output, PARAMS read by
    ``parse_params``."""
    require_text(text, tool=tool)
    targets = []
    for line in text.splitlines():
        if line.strip():
            name, start, length, params = _split_target_line(line, tool)
            targets.append(parse_params(" ".join(params), name=name, start=start, length=length))
    return targets


def parse_dmsetup_table(text: str) -> list[MultipathTable]:
    """Parse `dmsetup table [name]` lines of multipath targets, with or without the `name: ` prefix."""
    return _parse_target_lines(text, "dmsetup table", parse_multipath_table_params)


def parse_dmsetup_status(text: str) -> list[MultipathStatus]:
    """Parse `dmsetup status [name]` lines of multipath targets, with or without the `name: ` prefix."""
    return _parse_target_lines(text, "dmsetup status", parse_multipath_status_params)
