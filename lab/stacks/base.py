"""What every stack offers: plans from a topology, and the stack-specific ways to look at a host."""

from __future__ import annotations

from abc import ABC, abstractmethod

from lab.plan import Plan
from lab.topology import Topology


class Stack(ABC):
    """A guest software stack (FreeBSD as in the paper, or its Linux analogue).

    Plans are pure functions of the topology, so they can be tested offline against the paper.
    """

    name: str

    @abstractmethod
    def provision(self, topo: Topology) -> Plan:
        """Build the whole BeaST: pools, arbitrator, public targets, client multipaths, stripe, mount."""

    @abstractmethod
    def recovery(self, topo: Topology, failed: str) -> Plan:
        """Bring the ``failed`` controller back after it was restarted (the paper's recovery procedure)."""
