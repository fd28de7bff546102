"""The lab as data: the paper's configuration table by default, or a user's TOML file."""

from lab.topology.load import default_topology_path, load_topology, topology_from_dict
from lab.topology.model import (
    Bus,
    Client,
    Disk,
    DiskRole,
    Drill,
    Host,
    Iscsi,
    LabSettings,
    Multipath,
    Network,
    Pool,
    Role,
    Topology,
    Zvol,
)

__all__ = [
    "Bus", "Client", "Disk", "DiskRole", "Drill", "Host", "Iscsi", "LabSettings", "Multipath", "Network",
    "Pool", "Role", "Topology", "Zvol", "default_topology_path", "load_topology", "topology_from_dict",
]
