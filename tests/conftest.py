"""Fixtures the tests share."""

from __future__ import annotations

import tomllib

import pytest

from lab.topology import default_topology_path


@pytest.fixture(scope="module")
def paper_data() -> dict:
    """The paper's topology as data, for a test to spoil a copy of."""
    return tomllib.loads(default_topology_path().read_text())
