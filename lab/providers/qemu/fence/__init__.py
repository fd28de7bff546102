"""The qemu provider's side of the lab's fence listener (lab.fence answers fence_virt through a ``Power``
it is given; which VM that is and how to power it off is the provider's business).

Rooms: ``power`` (a QemuProvider rebuilt from the lab directory, seen as lab.fence's Power), ``service``
(starting and stopping the listener process by pid file), ``__main__`` (the listener process:
``python -m lab.providers.qemu.fence``). Nothing is imported here, so the provider can import ``service``
without importing itself.
"""
