"""Parsers for `zpool status`, `zpool import` (the listing) and `zpool import NAME` refusals.

They accept OpenZFS 2.x (Debian 12), FreeBSD 10 era ZFS (the paper) and the text of the paper
itself, whose PDF extraction lost the leading tabs and split some lines with blank ones.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lab.errors import ParseError
from lab.parsers._text import human_to_int, require_text

VDEV_STATES = frozenset(
    {"ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL", "REMOVED", "AVAIL", "INUSE", "SUSPENDED"}
)
GROUP_NAMES = ("logs", "cache", "spares", "special", "dedup")

_HEADER_KEYS = (
    "pool", "id", "state", "status", "action", "see", "scan", "scrub", "remove", "checkpoint",
    "expand", "comment", "config", "errors",
)
_HEADER_LINE = re.compile(r"^\s*(" + "|".join(_HEADER_KEYS) + r"):(?:\s(.*)|)$")
_COUNT = re.compile(r"^\d+(?:[.,]\d+)?[KMGTPE]?$")


@dataclass(frozen=True)
class Vdev:
    """One row of the config tree; the counters are None where the tool prints none (import, spares)."""

    name: str
    state: str
    read_errors: int | None = None
    write_errors: int | None = None
    checksum_errors: int | None = None
    note: str = ""
    children: tuple[Vdev, ...] = ()

    def walk(self) -> Iterator[Vdev]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class PoolConfig:
    """The config tree: the pool's own row with the data vdevs under it, then the special groups."""

    root: Vdev
    logs: tuple[Vdev, ...] = ()
    cache: tuple[Vdev, ...] = ()
    spares: tuple[Vdev, ...] = ()
    special: tuple[Vdev, ...] = ()
    dedup: tuple[Vdev, ...] = ()

    @property
    def data(self) -> tuple[Vdev, ...]:
        return self.root.children

    def walk(self) -> Iterator[Vdev]:
        yield from self.root.walk()
        for group in (self.logs, self.cache, self.spares, self.special, self.dedup):
            for vdev in group:
                yield from vdev.walk()

    def find(self, name: str) -> Vdev:
        for vdev in self.walk():
            if vdev.name == name:
                return vdev
        raise KeyError(name)


class ScanState(enum.StrEnum):
    NONE = "none"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Scan:
    """The `scan:` line. For a resilver, `repaired_bytes` is the amount resilvered."""

    kind: str | None
    state: ScanState
    repaired_bytes: int | None = None
    errors: int | None = None
    duration: str | None = None
    when: str | None = None
    percent_done: float | None = None
    text: str = ""


class DataErrorsKind(enum.StrEnum):
    NONE = "none"
    PERMANENT = "permanent"
    COUNT_ONLY = "count_only"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class DataErrors:
    """The `errors:` section. `entries` are `<metadata>:<0x1b>`, `pool/ds:<0x1>` or file paths."""

    kind: DataErrorsKind
    count: int | None
    entries: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolStatus:
    name: str
    state: str
    status: str | None
    action: str | None
    see: str | None
    scan: Scan | None
    config: PoolConfig
    errors: DataErrors


@dataclass(frozen=True)
class ImportablePool:
    """One pool of the `zpool import` listing (pools that could be imported here)."""

    name: str
    id: int
    state: str
    status: str | None
    action: str | None
    see: str | None
    config: PoolConfig


@dataclass
class _Block:
    fields: dict[str, str] = field(default_factory=dict)
    config_lines: list[str] = field(default_factory=list)
    error_lines: list[str] = field(default_factory=list)


def _split_blocks(text: str, tool: str) -> list[_Block]:
    blocks: list[_Block] = []
    section = "header"
    last_key: str | None = None
    for line in text.splitlines():
        match = _HEADER_LINE.match(line)
        key = match.group(1) if match else None
        if key == "pool":
            blocks.append(_Block())
            section, last_key = "header", None
        if not blocks:
            if line.strip():
                raise ParseError(
                    f"{tool}: expected a 'pool:' line first, got {line.strip()!r}; is this `{tool}` text?"
                )
            continue
        block = blocks[-1]
        if key is not None and not (section == "errors" and key != "pool"):
            value = (match.group(2) or "").strip()
            if key == "config":
                section = "config"
            elif key == "errors":
                section = "errors"
                block.error_lines.append(value)
            else:
                section = "header"
                block.fields[key] = value
            last_key = key
            continue
        if section == "config":
            block.config_lines.append(line)
        elif section == "errors":
            block.error_lines.append(line)
        elif line.strip():
            if last_key is None or last_key in ("config", "errors"):
                raise ParseError(f"{tool}: unexpected line {line.strip()!r} before any field")
            joined = block.fields[last_key]
            block.fields[last_key] = f"{joined}\n{line.strip()}" if joined else line.strip()
    return blocks


def _text_or_none(fields: dict[str, str], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    return " ".join(value.split())


def _row_indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip(" "))


@dataclass
class _Node:
    vdev: dict
    children: list[_Node] = field(default_factory=list)

    def freeze(self) -> Vdev:
        return Vdev(**self.vdev, children=tuple(child.freeze() for child in self.children))


def _parse_row(tokens: list[str], tool: str, line: str) -> dict:
    name, state = tokens[0], tokens[1]
    if state not in VDEV_STATES:
        raise ParseError(f"{tool}: config row {line.strip()!r} has unknown state {state!r}")
    rest = tokens[2:]
    counts: list[int | None] = [None, None, None]
    if len(rest) >= 3 and all(_COUNT.match(token) for token in rest[:3]):
        counts = [human_to_int(token, tool=tool, what="error count") for token in rest[:3]]
        rest = rest[3:]
    return {
        "name": name,
        "state": state,
        "read_errors": counts[0],
        "write_errors": counts[1],
        "checksum_errors": counts[2],
        "note": " ".join(rest),
    }


def _parse_config(lines: list[str], tool: str, pool_name: str) -> PoolConfig:
    rows = [line for line in lines if line.strip()]
    if rows and rows[0].split()[:2] == ["NAME", "STATE"]:
        base = _row_indent(rows[0])
        rows = rows[1:]
    elif rows:
        base = _row_indent(rows[0])
    if not rows:
        raise ParseError(f"{tool}: pool {pool_name!r} has an empty config section; is the output truncated?")

    root: _Node | None = None
    groups: dict[str, list[_Node]] = {name: [] for name in GROUP_NAMES}
    group: str | None = None
    stack: list[_Node] = []
    for line in rows:
        offset = _row_indent(line) - base
        if offset < 0 or offset % 2:
            raise ParseError(f"{tool}: config row {line.strip()!r} is not aligned with the tree")
        depth = offset // 2
        tokens = line.split()
        if depth == 0 and len(tokens) == 1 and tokens[0] in GROUP_NAMES:
            group = tokens[0]
            stack = []
            continue
        if len(tokens) < 2:
            raise ParseError(f"{tool}: config row {line.strip()!r} has no state column")
        node = _Node(_parse_row(tokens, tool, line))
        if depth == 0:
            if root is not None or group is not None:
                raise ParseError(f"{tool}: second top-level row {line.strip()!r} in pool {pool_name!r}")
            root, stack = node, [node]
            continue
        if group is not None:
            if depth == 1:
                groups[group].append(node)
                stack = [node]
                continue
            depth -= 1
        elif root is None:
            raise ParseError(f"{tool}: config row {line.strip()!r} comes before the pool's own row")
        if depth > len(stack):
            raise ParseError(f"{tool}: config row {line.strip()!r} is indented deeper than its parent")
        del stack[depth:]
        stack[-1].children.append(node)
        stack.append(node)
    if root is None:
        raise ParseError(f"{tool}: pool {pool_name!r} has no row for the pool itself in its config")
    return PoolConfig(
        root=root.freeze(),
        **{name: tuple(node.freeze() for node in nodes) for name, nodes in groups.items()},
    )


_SCAN_FINISHED = re.compile(
    r"^(?P<kind>scrub repaired|resilvered) (?P<amount>\S+) in (?P<duration>.+?) "
    r"with (?P<errors>\d+) errors on (?P<when>.+)$"
)
_SCAN_OLD_FINISHED = re.compile(
    r"^(?P<kind>scrub|resilver) completed after (?P<duration>\S+) with (?P<errors>\d+) errors on (?P<when>.+)$"
)
_SCAN_IN_PROGRESS = re.compile(r"^(?P<kind>scrub|resilver) in progress since (?P<when>.+)$")
_SCAN_PAUSED = re.compile(r"^(?P<kind>scrub) paused since (?P<when>.+)$")
_SCAN_CANCELED = re.compile(r"^(?P<kind>scrub|resilver) canceled on (?P<when>.+)$")
_PERCENT = re.compile(r"([\d.,]+)% done")
_PROGRESS_AMOUNT = re.compile(r"(\S+) (?:repaired|resilvered),")


def parse_scan(text: str, *, tool: str = "zpool status") -> Scan:
    """Parse the value of the `scan:` field (its continuation lines included)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ParseError(f"{tool}: the 'scan:' line is empty")
    first, whole = lines[0], " ".join(lines)
    if first == "none requested":
        return Scan(kind=None, state=ScanState.NONE, text=whole)
    if match := _SCAN_FINISHED.match(first):
        return Scan(
            kind="scrub" if match["kind"].startswith("scrub") else "resilver",
            state=ScanState.FINISHED,
            repaired_bytes=human_to_int(match["amount"], tool=tool, what="repaired amount"),
            errors=int(match["errors"]),
            duration=match["duration"],
            when=match["when"],
            text=whole,
        )
    if match := _SCAN_OLD_FINISHED.match(first):
        return Scan(
            kind=match["kind"], state=ScanState.FINISHED, errors=int(match["errors"]),
            duration=match["duration"], when=match["when"], text=whole,
        )
    for pattern, state in ((_SCAN_IN_PROGRESS, ScanState.IN_PROGRESS), (_SCAN_PAUSED, ScanState.PAUSED)):
        if match := pattern.match(first):
            percent = _PERCENT.search(whole)
            amount = _PROGRESS_AMOUNT.search(whole)
            return Scan(
                kind=match["kind"],
                state=state,
                repaired_bytes=human_to_int(amount[1], tool=tool, what="repaired amount") if amount else None,
                when=match["when"],
                percent_done=float(percent[1].replace(",", ".")) if percent else None,
                text=whole,
            )
    if match := _SCAN_CANCELED.match(first):
        return Scan(kind=match["kind"], state=ScanState.CANCELED, when=match["when"], text=whole)
    raise ParseError(f"{tool}: unknown 'scan:' text {first!r}")


_ERRORS_COUNT = re.compile(r"^(\d+) data errors?, use '-v' for a list$")


def _parse_errors(lines: list[str], tool: str, pool_name: str) -> DataErrors:
    if not lines:
        raise ParseError(f"{tool}: pool {pool_name!r} has no 'errors:' line; is the output truncated?")
    headline = lines[0].strip()
    rest = [line.strip() for line in lines[1:] if line.strip()]
    if headline == "No known data errors":
        kind, count, entries = DataErrorsKind.NONE, 0, ()
    elif headline == "Permanent errors have been detected in the following files:":
        if not rest:
            raise ParseError(f"{tool}: pool {pool_name!r} reports permanent errors but lists no files")
        kind, count, entries = DataErrorsKind.PERMANENT, len(rest), tuple(rest)
        rest = []
    elif match := _ERRORS_COUNT.match(headline):
        kind, count, entries = DataErrorsKind.COUNT_ONLY, int(match[1]), ()
    elif headline.startswith("List of errors unavailable"):
        kind, count, entries = DataErrorsKind.UNAVAILABLE, None, ()
    else:
        raise ParseError(f"{tool}: pool {pool_name!r} has unknown 'errors:' text {headline!r}")
    if rest:
        raise ParseError(f"{tool}: unexpected text {rest[0]!r} after the 'errors:' line of {pool_name!r}")
    return DataErrors(kind=kind, count=count, entries=entries)


def parse_zpool_status(text: str) -> list[PoolStatus]:
    """Parse `zpool status [-v]` for any number of pools; "no pools available" gives []."""
    tool = "zpool status"
    require_text(text, tool=tool)
    if text.strip() == "no pools available":
        return []
    pools = []
    for block in _split_blocks(text, tool):
        name = block.fields["pool"].strip()
        if "state" not in block.fields:
            raise ParseError(f"{tool}: pool {name!r} has no 'state:' line")
        if not block.config_lines:
            raise ParseError(f"{tool}: pool {name!r} has no 'config:' section; is the output truncated?")
        scan_text = block.fields.get("scan", block.fields.get("scrub"))
        pools.append(
            PoolStatus(
                name=name,
                state=block.fields["state"].strip(),
                status=_text_or_none(block.fields, "status"),
                action=_text_or_none(block.fields, "action"),
                see=_text_or_none(block.fields, "see"),
                scan=parse_scan(scan_text, tool=tool) if scan_text is not None else None,
                config=_parse_config(block.config_lines, tool, name),
                errors=_parse_errors(block.error_lines, tool, name),
            )
        )
    return pools


def parse_zpool_import(text: str) -> list[ImportablePool]:
    """Parse the listing printed by `zpool import` with no pool named; "no pools available" gives []."""
    tool = "zpool import"
    require_text(text, tool=tool)
    if text.strip() in ("no pools available to import", "no pools available"):
        return []
    pools = []
    for block in _split_blocks(text, tool):
        name = block.fields["pool"].strip()
        for key in ("id", "state"):
            if key not in block.fields:
                raise ParseError(f"{tool}: pool {name!r} has no '{key}:' line")
        if block.error_lines:
            raise ParseError(f"{tool}: pool {name!r} has an 'errors:' line; this looks like `zpool status`")
        if not block.fields["id"].strip().isdigit():
            raise ParseError(f"{tool}: pool {name!r} has a non-numeric id {block.fields['id']!r}")
        pools.append(
            ImportablePool(
                name=name,
                id=int(block.fields["id"]),
                state=block.fields["state"].strip(),
                status=_text_or_none(block.fields, "status"),
                action=_text_or_none(block.fields, "action"),
                see=_text_or_none(block.fields, "see"),
                config=_parse_config(block.config_lines, tool, name),
            )
        )
    return pools


class ImportRefusalKind(enum.StrEnum):
    IN_USE_ELSEWHERE = "in_use_elsewhere"
    IMPORTED_ON_OTHER_HOST = "imported_on_other_host"
    NO_SUCH_POOL = "no_such_pool"
    NAME_EXISTS = "name_exists"
    DEVICES_UNAVAILABLE = "devices_unavailable"
    OTHER = "other"


@dataclass(frozen=True)
class ImportRefusal:
    """Why `zpool import NAME` refused: `host`/`hostid` name the other system where the tool says so."""

    kind: ImportRefusalKind
    pool: str
    host: str | None
    hostid: int | None
    last_accessed: str | None
    message: str


_CANNOT_IMPORT = re.compile(r"cannot import '(?P<pool>[^']*)': (?P<reason>.*)", re.DOTALL)
_LAST_ACCESSED_NEW = re.compile(
    r"Last access(?:ed)? by (?P<host>\S+) \(hostid=(?:0x)?(?P<hostid>[0-9a-fA-F]+)\) at (?P<when>.+?)"
    r" The pool can be imported"
)
_LAST_ACCESSED_OLD = re.compile(
    r"last accessed by (?P<host>\S+) \(hostid: (?:0x)?(?P<hostid>[0-9a-fA-F]+)\) on (?P<when>.+?) use '-f'"
)
_MMP_HOST = re.compile(r"pool is imported on host '(?P<host>[^']*)' \(hostid=(?:0x)?(?P<hostid>[0-9a-fA-F]+)\)")


def classify_import_refusal(stderr: str) -> ImportRefusal:
    """Classify the stderr of a refused `zpool import NAME` (OpenZFS 2.x and older ZFS wording)."""
    tool = "zpool import"
    require_text(stderr, tool=tool)
    message = stderr.strip()
    match = _CANNOT_IMPORT.search(message)
    if match is None:
        raise ParseError(f"{tool}: no \"cannot import '<pool>':\" in {message.splitlines()[0]!r}")
    pool = match["pool"]
    reason = " ".join(match["reason"].split())
    host = hostid = when = None
    if reason.startswith("pool was previously in use from another system") or reason.startswith(
        "pool may be in use from other system"
    ):
        kind = ImportRefusalKind.IN_USE_ELSEWHERE
        details = _LAST_ACCESSED_NEW.search(reason) or _LAST_ACCESSED_OLD.search(reason)
        if details:
            host, hostid, when = details["host"], int(details["hostid"], 16), details["when"]
    elif reason.startswith("pool is imported on"):
        kind = ImportRefusalKind.IMPORTED_ON_OTHER_HOST
        if details := _MMP_HOST.search(reason):
            host, hostid = details["host"], int(details["hostid"], 16)
    elif reason.startswith("no such pool available"):
        kind = ImportRefusalKind.NO_SUCH_POOL
    elif reason.startswith("a pool with that name already exists"):
        kind = ImportRefusalKind.NAME_EXISTS
    elif reason.startswith("one or more devices is currently unavailable"):
        kind = ImportRefusalKind.DEVICES_UNAVAILABLE
    else:
        kind = ImportRefusalKind.OTHER
    return ImportRefusal(kind=kind, pool=pool, host=host, hostid=hostid, last_accessed=when, message=message)
