"""The lab's fence device: a host-side listener that powers the lab's own VMs off and on when a guest's
stock ``fence_virt`` asks through its serial fence port (fence_virt's serial protocol, no IP network).

Rooms: ``protocol`` (the wire format, pure), ``log`` (the request log and its reader), ``listener`` (the
socket server, answering through a ``Power`` it is given). It knows no provider: the qemu provider's
power, the listener's process and starting and stopping it are lab.providers.qemu.fence's.
"""

from __future__ import annotations

from lab.fence.log import FenceRequest, read_fence_log

__all__ = ["FenceRequest", "read_fence_log"]
