"""The lab's fence device: a host-side listener that powers the lab's own VMs off and on when a guest's
stock ``fence_virt`` asks through its serial fence port (fence_virt's serial protocol, no IP network).

Rooms: ``protocol`` (the wire format, pure), ``log`` (the request log and its reader), ``listener`` (the
socket server), ``power`` (the qemu provider seen by the listener), ``service`` (starting and stopping
the listener process by pid file).
"""

from __future__ import annotations

from lab.fence.log import FenceRequest, read_fence_log

__all__ = ["FenceRequest", "read_fence_log"]
