"""Which pools each controller had imported, when: a watcher on every controller, and the check that no
pool was ever imported on two controllers at once.

The watcher is a loop in each controller (the stack's ``imports_watch_command``) that appends
``<epoch> <pool,pool,...>`` once a second to a file it syncs, so a power-off keeps what it wrote; the drill
reads the files back at the end, when every controller runs again. A controller is taken to hold what its
last line said until its next line, or until it was powered off (the nemesis's or a fence's power-off,
from the run's events and the fence log): a frozen controller holds its pools while frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lab.drill.claims import Judged
from lab.drill.context import Drill
from lab.errors import ParseError
from lab.runfolder import Reason
from lab.stacks.shell import quote

WATCH_LOG = "/var/lib/beast/imports.log"
WATCH_INTERVAL_S = 1.0
CLOCK_TOLERANCE_S = 1.5
"""Guest clocks are set from the host's after a restore, to within about a second: an overlap shorter
than this may be the clocks, not the pools."""


@dataclass(frozen=True)
class ImportSample:
    at: float
    pools: frozenset[str]


@dataclass(frozen=True)
class DoubleImport:
    pool: str
    hosts: tuple[str, str]
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return round(self.end - self.start, 1)


def parse_watch_log(text: str) -> list[ImportSample]:
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        stamp, _, pools = line.strip().partition(" ")
        try:
            at = float(stamp)
        except ValueError:
            raise ParseError(f"imports log line {number}: {stamp!r} is not an epoch") from None
        samples.append(ImportSample(at, frozenset(p for p in pools.split(",") if p)))
    return samples


Span = tuple[float, float, frozenset[str]]


def holdings(samples: list[ImportSample], powered_off: list[float], until: float) -> list[Span]:
    """(start, end, pools) spans: each sample holds until the next one, the first power-off after it, or
    ``until``."""
    ordered = sorted(samples, key=lambda s: s.at)
    spans = []
    for index, sample in enumerate(ordered):
        end = ordered[index + 1].at if index + 1 < len(ordered) else until
        end = min([end, *(t for t in powered_off if t >= sample.at)])
        if sample.pools and end > sample.at:
            spans.append((sample.at, end, sample.pools))
    return spans


def double_imports(samples: dict[str, list[ImportSample]], powered_off: dict[str, list[float]], until: float,
                   tolerance: float = CLOCK_TOLERANCE_S) -> list[DoubleImport]:
    """Every time two controllers held the same pool at once for longer than ``tolerance``, merged per pool
    and pair of hosts."""
    spans = {host: holdings(found, powered_off.get(host, []), until) for host, found in samples.items()}
    hosts = sorted(spans)
    found: list[DoubleImport] = []
    for i, first in enumerate(hosts):
        for second in hosts[i + 1:]:
            for a_start, a_end, a_pools in spans[first]:
                for b_start, b_end, b_pools in spans[second]:
                    start, end = max(a_start, b_start), min(a_end, b_end)
                    for pool in sorted(a_pools & b_pools):
                        if end > start:
                            found.append(DoubleImport(pool, (first, second), start, end))
    return [d for d in _merged(found) if d.end - d.start > tolerance]


def _merged(found: list[DoubleImport]) -> list[DoubleImport]:
    merged: list[DoubleImport] = []
    for item in sorted(found, key=lambda d: (d.pool, d.hosts, d.start)):
        last = merged[-1] if merged else None
        if last and (last.pool, last.hosts) == (item.pool, item.hosts) and item.start <= last.end + WATCH_INTERVAL_S:
            merged[-1] = DoubleImport(item.pool, item.hosts, last.start, max(last.end, item.end))
        else:
            merged.append(item)
    return merged


def start_watch(drill: Drill, hosts: list[str] | None = None, fresh: bool = True) -> None:
    """Start the watcher on the controllers (``hosts``: all); ``fresh``: a new log, else appended to (a
    restarted controller's watcher went with its power)."""
    stack = drill.session.stack
    loop = stack.imports_watch_command(WATCH_LOG, WATCH_INTERVAL_S)
    clear = f"; rm -f {quote(WATCH_LOG)}" if fresh else ""
    for host in hosts or [c.name for c in drill.session.topo.controllers]:
        drill.must(host, f"mkdir -p {quote(WATCH_LOG.rsplit('/', 1)[0])}{clear}; "
                   f"nohup sh -c {quote(loop)} </dev/null >/dev/null 2>&1 &", 30, "imports-watch-start")


def collect(drill: Drill) -> dict[str, list[ImportSample]]:
    """Each running controller's log, saved to the run folder and parsed; a host that cannot be read is
    left out (and said so in the facts)."""
    found: dict[str, list[ImportSample]] = {}
    unread = []
    for controller in drill.session.topo.controllers:
        result = drill.session.run(controller.name, f"cat {quote(WATCH_LOG)}", 30, "imports-watch-read")
        if result.exit_code != 0:
            unread.append(f"{controller.name}: {result.ending}")
            continue
        drill.record.save(f"imports/{controller.name}.log", result.stdout)
        try:
            found[controller.name] = parse_watch_log(result.stdout)
        except ParseError as error:
            unread.append(f"{controller.name}: {error}")
    drill.facts["imports_unread"] = unread
    return found




def powered_off_times(drill: Drill, fenced: list[tuple[str, float]]) -> dict[str, list[float]]:
    """When each controller lost power: the nemesis's power-offs (facts) and the fences that powered one off."""
    times: dict[str, list[float]] = {h: list(t) for h, t in drill.facts.get("powered_off", {}).items()}
    for host, at in fenced:
        times.setdefault(host, []).append(at)
    return times


def judge(drill: Drill, fenced: list[tuple[str, float]]) -> None:
    """``no_double_import``: no pool on two controllers at once, from the watchers' logs (and any double
    import a step saw for itself, e.g. split-brain's naive takeover)."""
    samples = collect(drill)
    found = double_imports(samples, powered_off_times(drill, fenced), time.time())
    seen = list(drill.facts.get("double_imports", []))
    problems = seen + [f"{d.pool} on {' and '.join(d.hosts)} for {d.seconds} s" for d in found]
    drill.facts["double_imports_watched"] = [
        {"pool": d.pool, "hosts": list(d.hosts), "start": d.start, "end": d.end} for d in found]
    unread = drill.facts.get("imports_unread", [])
    watched = ", ".join(f"{h} ({len(s)} samples)" for h, s in samples.items()) or "no controller"
    evidence = "; ".join(problems[:4]) or f"never on two controllers at once (watched: {watched})"
    if unread:
        evidence += f"; not read: {'; '.join(unread)}"
    drill.claims(Judged("no_double_import", not problems, evidence, reason=Reason.DOUBLE_IMPORT))
