"""Shared pytest options for tests/ and scenarios/ (defined in lab.pytest_options, which `bst drill` also loads
as a plugin from an installed wheel)."""

from lab.pytest_options import pytest_addoption, pytest_runtest_makereport  # noqa: F401
