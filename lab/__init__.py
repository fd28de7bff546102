"""BeaST Lab: reproduce and drill the BeaST + ZFS dual-controller storage system in VMs."""

__version__ = "0.1.0"
