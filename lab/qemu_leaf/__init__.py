"""The qemu leaf: what talks to QEMU itself and knows nothing of labs, hosts, guests or images.

Rooms: ``qmp`` (QEMU's monitor through qemu.qmp: commands, quit, passing a file descriptor) and ``accel``
(which accelerator VMs run under: KVM when a Linux kernel really boots under it here, else TCG). Both the
qemu provider (lab.providers.qemu) and the FreeBSD image preparation (lab.images.freebsd) use them, so
they sit below both (docs/architecture.md, "Layers point one way").
"""
