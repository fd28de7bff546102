"""The lab as data: the paper's configuration table by default, or a user's TOML file."""

from lab.topology import model
from lab.topology.load import default_topology_path, load_topology, topology_from_dict
from lab.topology.model import *  # noqa: F403  (the typed topology: model.__all__)

__all__ = [*model.__all__, "default_topology_path", "load_topology", "topology_from_dict"]
