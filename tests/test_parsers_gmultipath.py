"""gmultipath status / list parsers (FreeBSD GEOM multipath), see fixtures SOURCES.md."""

from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.parsers.gmultipath import parse_gmultipath_list, parse_gmultipath_status

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def test_freenas_status_right_aligned_names_and_continuations():
    devices = parse_gmultipath_status((FIXTURES / "gmultipath" / "freenas_disklist10_status.txt").read_text())
    assert len(devices) == 14
    assert all(d.status == "OPTIMAL" for d in devices)
    disk6 = devices[2]
    assert disk6.name == "multipath/disk6"
    assert [(c.name, c.state) for c in disk6.components] == [("da45", "ACTIVE"), ("da21", "PASSIVE")]
    assert devices[-1].name == "multipath/disk1" and devices[-1].active == ("da34",)


def test_status_degraded_with_failed_path_as_in_the_lab():
    """Layout of sbin/geom/core/geom.c status: right-aligned name, "(STATE)" after each component."""
    text = (
        "          Name    Status  Components\n"
        "multipath/CTRL_A  DEGRADED  da0 (FAIL)\n"
        "                            da3 (ACTIVE)\n"
        "multipath/CTRL_B   OPTIMAL  da2 (ACTIVE)\n"
        "                            da1 (PASSIVE)\n"
    )
    ctrl_a, ctrl_b = parse_gmultipath_status(text)
    assert (ctrl_a.status, ctrl_a.active) == ("DEGRADED", ("da3",))
    assert [(c.name, c.state) for c in ctrl_a.components] == [("da0", "FAIL"), ("da3", "ACTIVE")]
    assert ctrl_b.status == "OPTIMAL"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gmultipath: Class 'MULTIPATH' not found.\n", "not the 'Name  Status  Components' header"),
        ("Name Status Components\nmultipath/X  SHINY  da0 (ACTIVE)\n", "neither"),
        ("Name Status Components\n   da1 (PASSIVE)\n", "neither"),
        ("Name Status Components\nmultipath/X  OPTIMAL  da0 [ACTIVE]\n", "is not 'daN \\(STATE\\)'"),
    ],
)
def test_status_garbage_raises(text, message):
    with pytest.raises(ParseError, match=message) as raised:
        parse_gmultipath_status(text)
    assert str(raised.value).startswith("gmultipath status:")


def test_list_geom_blocks():
    """Layout of `geom list` (sbin/geom/core/geom.c list_one_geom); not a captured output."""
    text = (
        "Geom name: CTRL_A\nType: MANUAL\nMode: Active/Passive\nUUID: \nState: DEGRADED\nProviders:\n"
        "1. Name: multipath/CTRL_A\n   Mediasize: 125829120 (120M)\n   Sectorsize: 512\n   Mode: r1w1e1\n"
        "   State: DEGRADED\nConsumers:\n1. Name: da0\n   Mediasize: 125829120 (120M)\n   Sectorsize: 512\n"
        "   Mode: r1w1e1\n   State: FAIL\n2. Name: da3\n   Mediasize: 125829120 (120M)\n   Sectorsize: 512\n"
        "   Mode: r1w1e1\n   State: ACTIVE\n\n"
    )
    [geom] = parse_gmultipath_list(text)
    assert (geom.name, geom.state, geom.fields["Mode"]) == ("CTRL_A", "DEGRADED", "Active/Passive")
    assert [p.name for p in geom.providers] == ["multipath/CTRL_A"]
    assert [(c.name, c.fields["State"]) for c in geom.consumers] == [("da0", "FAIL"), ("da3", "ACTIVE")]
    with pytest.raises(ParseError, match="expected 'Geom name:' first"):
        parse_gmultipath_list("Providers:\n1. Name: multipath/X\n")
