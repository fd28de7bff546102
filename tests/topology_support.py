"""What the hostile-topology tests share: the one line a spoilt copy of the paper's topology is refused with
(the paper's topology as data to spoil is tests/conftest.py's ``paper_data``)."""

from __future__ import annotations

import pytest

from lab.errors import TopologyError
from lab.topology import topology_from_dict


def refused(data: dict) -> str:
    with pytest.raises(TopologyError) as err:
        topology_from_dict(data, source="t.toml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("topology t.toml: ")
    return text
