"""Nemeses: the faults a drill strikes the lab with, Jepsen's way.

A nemesis only injects a fault (``start``) and heals it (``stop``); it never repairs the system's state
(no import, no fencing: that is the system's job, or the takeover oracle's). Each records its own events,
and ``teardown`` heals whatever is still broken when a step fails half-way (a cable is always plugged
back, a frozen VM always resumed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lab.drill.context import Drill
from lab.providers.base import HostState
from lab.runfolder import EventKind


@dataclass
class Nemesis:
    """A fault on one host of the lab; ``active`` while it is in effect."""

    action: str = "fault"
    undo: str = "heal"
    active: bool = field(default=False, init=False)

    def start(self, drill: Drill, host: str) -> None:
        self._strike(drill, host)
        self.active = True
        drill.facts.setdefault("fault_at", time.time())
        drill.event(EventKind.FAULT, action=self.action, host=host, **self.details())

    def stop(self, drill: Drill, host: str) -> None:
        if not self.active:
            return
        healed = self._heal(drill, host) is not False
        self.active = False
        drill.event(EventKind.FAULT_UNDONE, action=self.undo, host=host, healed=healed, **self.details())

    def teardown(self, drill: Drill, host: str) -> None:
        """Heal a fault a failed step left in effect; a permanent fault (a power-off) stays."""
        if self.active and self.transient:
            self.stop(drill, host)

    transient = True
    """Healed by the scenario itself after a while (a freeze, a cut cable), not by a recovery."""
    isolates = True
    """The fault takes the host away from its peers (a cluster may rightly fence it); a lost cable with
    another one left does not."""

    def details(self) -> dict:
        return {}

    def _strike(self, drill: Drill, host: str) -> None:
        raise NotImplementedError

    def _heal(self, drill: Drill, host: str) -> bool | None:
        """Undo the fault; False when there was nothing left to undo."""
        raise NotImplementedError


@dataclass
class PowerOff(Nemesis):
    """Pull the power: the VM stops at once, as the paper's "kill ctrl-a". Healing starts it again (its
    software recovery is the scenario's recovery step, not the nemesis's)."""

    action: str = "power-off"
    undo: str = "start"
    transient = False

    def _strike(self, drill: Drill, host: str) -> None:
        drill.session.provider.power_off(host)
        drill.facts.setdefault("powered_off", {}).setdefault(host, []).append(time.time())
        drill.session.forget(host)

    def _heal(self, drill: Drill, host: str) -> None:
        drill.session.provider.start(host)
        drill.session.forget(host)


@dataclass
class Freeze(Nemesis):
    """Pause the VM: it looks dead to everyone, then carries on where it stopped."""

    action: str = "pause"
    undo: str = "resume"

    def _strike(self, drill: Drill, host: str) -> None:
        drill.session.provider.pause(host)

    def _heal(self, drill: Drill, host: str) -> bool:
        """Resume the VM, unless someone powered it off meanwhile (a cluster fencing it): then there is
        nothing left to resume, and the event says so (healed: false)."""
        state = next((s.state for s in drill.session.provider.status() if s.name == host), None)
        if state is not HostState.PAUSED:
            drill.facts["not_resumed"] = f"{host} was {state} when the freeze ended: not resumed"
            drill.session.forget(host)
            return False
        drill.session.provider.resume(host)
        return True


@dataclass
class CutLink(Nemesis):
    """Pull one of the host's cables (``network``), then plug it back."""

    network: str = "public"
    action: str = "link-down"
    undo: str = "link-up"
    isolates = False

    def details(self) -> dict:
        return {"network": self.network}

    def _strike(self, drill: Drill, host: str) -> None:
        drill.session.provider.set_link(host, self.network, up=False)

    def _heal(self, drill: Drill, host: str) -> None:
        drill.session.provider.set_link(host, self.network, up=True)


@dataclass
class Isolate(Nemesis):
    """Pull every lab cable of the host (private and public, not its management port): its peer sees it
    gone on both of the cluster's links, the client loses its path to it, and it may still run. Healing
    plugs the cables back into a host that still runs (one a cluster fenced meanwhile has none to plug)."""

    action: str = "isolate"
    undo: str = "reconnect"

    def _networks(self, drill: Drill, host: str) -> list[str]:
        return sorted(drill.session.topo.hosts[host].addresses)

    def details(self) -> dict:
        return {"network": "all"}

    def _strike(self, drill: Drill, host: str) -> None:
        for network in self._networks(drill, host):
            drill.session.provider.set_link(host, network, up=False)

    def _heal(self, drill: Drill, host: str) -> bool:
        state = next((s.state for s in drill.session.provider.status() if s.name == host), None)
        if state not in (HostState.RUNNING, HostState.PAUSED):
            drill.facts["not_reconnected"] = f"{host} was {state} when the isolation ended: no cable to plug back"
            drill.session.forget(host)
            return False
        for network in self._networks(drill, host):
            drill.session.provider.set_link(host, network, up=True)
        return True
