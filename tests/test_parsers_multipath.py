"""multipath -ll and dmsetup table/status parsers against real outputs (see fixtures SOURCES.md)."""

from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.parsers.multipath import (
    parse_dmsetup_status,
    parse_dmsetup_table,
    parse_multipath_ll,
    parse_multipath_status_params,
    parse_multipath_table_params,
)

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def maps(name: str):
    return parse_multipath_ll((FIXTURES / "multipath" / name).read_text())


def test_rhel6_maps_with_alias_wwid_spaces_and_empty_map():
    result = maps("insights_rhel6_maps.txt")
    assert [m.name for m in result] == [
        "mpathg", "mpathe", "36001405b1629f80d52a4c898f8856e43", "mpatha", "1IET     00080001", "mpathb",
        "1IET     00080007", "mpathc",
    ]
    mpathg = result[0]
    assert (mpathg.wwid, mpathg.dm, mpathg.vendor, mpathg.product) == (
        "36f01faf000da360b0000033c528fea6d", "dm-2", "DELL", "MD36xxi")
    assert (mpathg.size, mpathg.features, mpathg.hwhandler, mpathg.wp) == (
        "54T", "3 queue_if_no_path pg_init_retries 50", "1 rdac", "rw")
    assert [(g.policy, g.prio, g.status) for g in mpathg.groups] == [
        ("round-robin 0", 0, "active"), ("round-robin 0", 0, "enabled")]
    assert [p.dev for p in mpathg.active_group.paths] == ["sdc", "sdi", "sdo", "sdv"]
    last = mpathg.groups[1].paths[-1]
    assert (last.hctl, last.dev, last.dev_t, last.dm_state, last.path_state, last.online_state) == (
        "18:0:0:1", "sdx", "65:112", "active", "ready", "running")
    assert result[1].wp == "rx" and result[1].hwhandler == "2 rdac"
    lio = result[2]
    assert (lio.wwid, lio.vendor, lio.product) == ("36001405b1629f80d52a4c898f8856e43", "LIO-ORG", "block0_sdb")
    assert result[3].wwid == "1IET     00080001"
    assert result[5].product == "Compellent Vol"
    assert (result[7].vendor, result[7].groups) == ("uninitialized", ())


def test_redhat_doc_example_double_spaced_states():
    [m] = maps("redhat_rhel6_doc_example.txt")
    assert m.name == m.wwid == "3600d0230000000000e13955cc3757800"
    assert [(p.dev, p.path_state) for p in m.paths] == [("sdb", "ready"), ("sdf", "ready")]


def test_debian12_multibus_single_group():
    [m] = maps("multipath_tools101_debian12_multibus.txt")
    [group] = m.groups
    assert (group.policy, group.prio, group.status) == ("service-time 0", 1, "active")
    assert [(p.hctl, p.dev, p.dev_t) for p in group.paths] == [
        ("1:0:11:0", "sdq", "65:0"), ("1:0:59:0", "sdbl", "67:240")]


def test_multipath_l_undef_checker_states():
    [m] = maps("hi_angel_notes_multipath_l_undef.txt")
    assert [(p.dm_state, p.path_state, p.online_state) for p in m.paths] == [("active", "undef", "unknown")] * 2


def test_two_maps_with_queue_if_no_path():
    result = maps("rear2428_multipath_l_queue_if_no_path.txt")
    assert [(m.name, m.dm, len(m.paths)) for m in result] == [("site_A_3", "dm-4", 3), ("site_B_3", "dm-9", 3)]
    assert all(m.features == "1 queue_if_no_path" for m in result)


def test_alua_map_with_wide_hctl_column():
    [m] = maps("feilong439_alua_wide_hctl.txt")
    assert m.hwhandler == "1 alua"
    assert [len(g.paths) for g in m.groups] == [7, 7]
    assert m.groups[0].paths[0].hctl == "0:0:10:2" and m.groups[1].paths[-1].dev == "sdbu"


def test_failed_faulty_path_inside_a_map():
    text = (
        "mpatha (36001405aaaa) dm-0 LIO-ORG,v0\n"
        "size=120M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw\n"
        "|-+- policy='service-time 0' prio=50 status=active\n"
        + (FIXTURES / "multipath" / "dellcsm296_grep_fault_lines_only.txt").read_text().replace("  |", "| |", 3)
    )
    [m] = parse_multipath_ll(text)
    assert [(p.dev, p.dm_state, p.path_state) for p in m.paths][0] == ("sdaq", "failed", "faulty")


def test_empty_output_means_no_maps():
    assert parse_multipath_ll("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ((FIXTURES / "multipath" / "dellcsm296_grep_fault_lines_only.txt").read_text(), "outside any path group"),
        ("Aug 30 05:09:18 | 65:16: cannot find block device\n", "unexpected line"),
        ("mpatha (3600) dm-0 LIO-ORG,v0\n|-+- policy='service-time 0' prio=50 status=active\n"
         "| `- 2:0:0:0 sdb 8:16 active\n", "lacks dm, checker and online states"),
    ],
)
def test_multipath_garbage_raises(text, message):
    with pytest.raises(ParseError, match=message) as raised:
        parse_multipath_ll(text)
    assert str(raised.value).startswith("multipath -ll:")


def test_dmsetup_table_real_line_with_hw_handler():
    [table] = parse_dmsetup_table((FIXTURES / "dmsetup" / "flatcar349_table_emc_one_path.txt").read_text())
    assert (table.name, table.start, table.length) == (None, 0, 20971520)
    assert table.features == ("queue_if_no_path", "retain_attached_hw_handler")
    assert table.hw_handler == ("emc",) and table.initial_group == 1
    [group] = table.groups
    assert (group.selector, group.selector_args) == ("service-time", ())
    assert [(p.dev, p.args) for p in group.paths] == [("8:16", ("1",))]


def test_dmsetup_table_name_prefix_form_and_lab_line():
    text = (
        "mpatha: 0 245760 multipath 2 queue_mode bio 0 2 1 round-robin 0 1 1 8:16 1 round-robin 0 1 1 230:0 1\n"
        "360060160e1714c005e723e6089be39bd: 0 20971520 multipath 2 queue_if_no_path retain_attached_hw_handler"
        " 1 emc 1 1 service-time 0 1 1 8:16 1\n"
    )
    first, second = parse_dmsetup_table(text)
    assert first.name == "mpatha" and first.features == ("queue_mode", "bio") and first.hw_handler == ()
    assert [[p.dev for p in g.paths] for g in first.groups] == [["8:16"], ["230:0"]]
    assert second.name == "360060160e1714c005e723e6089be39bd"


def test_rhel5_params_and_status_strings():
    fixture = FIXTURES / "dmsetup" / "insights_rhel5_v4_params_status_L004.txt"
    params_line, status_line = fixture.read_text().splitlines()
    table = parse_multipath_table_params(params_line.removeprefix("params = "))
    assert [[(p.dev, p.args) for p in g.paths] for g in table.groups] == [
        [("8:160", ("1000",)), ("8:240", ("1000",))], [("8:80", ("1000",)), ("65:64", ("1000",))]]
    status = parse_multipath_status_params(status_line.removeprefix("status = "))
    assert (status.queue_io, status.pg_init_count, status.next_group) == (0, 1, 1)
    assert [g.state for g in status.groups] == ["A", "E"]
    assert all(p.active and p.fail_count == 0 for p in status.paths)


def test_dmsetup_status_failed_path_with_service_time_counters():
    [status] = parse_dmsetup_status(
        "mpatha: 0 245760 multipath 2 1 0 0 2 2 E 0 1 2 8:16 F 3 0 1 A 0 1 2 230:0 A 0 0 1\n")
    assert status.name == "mpatha" and status.queue_io == 1
    first, second = status.groups
    failed = first.paths[0]
    assert (first.state, failed.dev, failed.active, failed.fail_count) == ("E", "8:16", False, 3)
    assert first.paths[0].selector_status == ("0", "1")
    assert second.state == "A" and second.paths[0].active


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_dmsetup_table, "0 6291456 linear 8:2 0\n", "is 'linear', not 'multipath'"),
        (parse_dmsetup_table, "0 245760 multipath 2 queue_mode bio 0 2 1 round-robin 0 1 1 8:16\n", "line ends"),
        (parse_dmsetup_table, "No devices found\n", "expected '\\[name:\\] start length multipath"),
        (parse_dmsetup_status, "0 245760 multipath 2 0 0 0 1 1 A 0 1 0 8:16 X 0\n", "is not A or F"),
        (parse_dmsetup_status, "0 245760 multipath 2 0 0 0 1 1 A 0 1 0 8:16 A 0 extra\n", "trailing words"),
        (parse_dmsetup_status, "", "empty"),
    ],
)
def test_dmsetup_garbage_raises(parser, text, message):
    with pytest.raises(ParseError, match=message):
        parser(text)


# The client's maps as multipathd 0.9.4 makes them (queue_if_no_path from no_path_retry, LIO's alua
# handler, service-time, one path group per controller), as the kernel and multipath -ll show them.

MULTIPATHD_LL = """\
CTRL_A (360014056dac23caf34d544b8d379d1b7) dm-2 LIO-ORG,IBLOCK
size=120M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
|-+- policy='service-time 0' prio=20 status=active
| `- 3:0:0:0 sdb 8:16 active ready running
`-+- policy='service-time 0' prio=10 status=enabled
  `- 4:0:0:1 sdd 8:48 active ready running
CTRL_B (3600140532e68a9bbb725f73ba2d51d61) dm-3 LIO-ORG,IBLOCK
size=120M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
`-+- policy='service-time 0' prio=10 status=active
  `- 3:0:0:1 sde 8:64 active ready running
"""
"""CTRL_A as provisioned; CTRL_B after its owner's session was logged out (the peer's path alone)."""


def test_multipathd_lab_maps_owner_group_first():
    normal, one_path = parse_multipath_ll(MULTIPATHD_LL)
    assert (normal.name, normal.wwid, normal.features, normal.hwhandler) == (
        "CTRL_A", "360014056dac23caf34d544b8d379d1b7", "1 queue_if_no_path", "1 alua")
    assert [(g.prio, g.status, [p.dev for p in g.paths]) for g in normal.groups] == [
        (20, "active", ["sdb"]), (10, "enabled", ["sdd"])]
    assert [(g.prio, [(p.dev, p.dm_state, p.path_state) for p in g.paths]) for g in one_path.groups] == [
        (10, [("sde", "active", "ready")])]


def test_dmsetup_table_of_a_multipathd_map_with_alua_and_queueing():
    [table] = parse_dmsetup_table(
        "CTRL_A: 0 245760 multipath 2 queue_if_no_path retain_attached_hw_handler 1 alua 2 1 "
        "service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:48 1 1\n")
    assert table.name == "CTRL_A" and table.features == ("queue_if_no_path", "retain_attached_hw_handler")
    assert table.hw_handler == ("alua",) and table.initial_group == 1
    assert [(g.selector, [(p.dev, p.args) for p in g.paths]) for g in table.groups] == [
        ("service-time", [("8:16", ("1", "1"))]), ("service-time", [("8:48", ("1", "1"))])]


def test_dmsetup_status_of_a_multipathd_map_queueing_with_no_path():
    [status] = parse_dmsetup_status(
        "CTRL_A: 0 245760 multipath 2 1 0 0 2 1 E 0 1 2 8:16 F 2 0 1 E 0 1 2 8:48 F 1 0 1\n")
    assert status.queue_io == 1 and status.hw_handler_status == ()
    assert [(p.dev, p.active, p.fail_count) for p in status.paths] == [("8:16", False, 2), ("8:48", False, 1)]
