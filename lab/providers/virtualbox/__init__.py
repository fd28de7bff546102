"""The paper's own environment: FreeBSD 10.3 VMs in VirtualBox through Vagrant (see provider.py)."""

from lab.providers.virtualbox.provider import VirtualBoxProvider

__all__ = ["VirtualBoxProvider"]
