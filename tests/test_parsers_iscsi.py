"""iscsiadm (open-iscsi) and iscsictl (FreeBSD) parsers against real outputs (see fixtures SOURCES.md)."""

from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.parsers.iscsi import IscsictlState, parse_iscsiadm_session, parse_iscsiadm_session_p3, parse_iscsictl_list

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def read(tool: str, name: str) -> str:
    return (FIXTURES / tool / name).read_text()


def test_session_lines():
    sessions = parse_iscsiadm_session(read("iscsiadm", "democratic_csi227_session.txt"))
    assert [s.sid for s in sessions] == [1, 2, 3]
    first = sessions[0]
    assert (first.transport, first.portal, first.tpgt, first.flash) == ("tcp", "truenas.[REDACTED]:3260", 1, False)
    assert first.target == "iqn.2005-10.org.freenas.ctl:csi-pvc-1224c988-4198-47cb-85a1-66d4755c94e9-main-k8s"


def test_session_line_of_the_lab():
    [s] = parse_iscsiadm_session("tcp: [1] 192.168.56.11:3260,1 iqn.2016-01.local.sss.private:target0 (non-flash)\n")
    assert (s.portal, s.target) == ("192.168.56.11:3260", "iqn.2016-01.local.sss.private:target0")


def test_no_active_sessions_is_empty():
    assert parse_iscsiadm_session(read("iscsiadm", "no_active_sessions_stderr.txt")) == []
    assert parse_iscsiadm_session_p3(read("iscsiadm", "no_active_sessions_stderr.txt")) == []


def test_session_p3_logged_in_with_disk():
    [s] = parse_iscsiadm_session_p3(read("iscsiadm", "flatcar349_session_p3.txt"))
    assert s.target == "iqn.1992-04.com.emc:cx.apm00191923511.a4"
    assert (s.current_portal, s.persistent_portal, s.sid) == ("10.1.53.160:3260,1", "10.1.53.160:3260,1", 1)
    assert (s.connection_state, s.session_state, s.internal_state) == ("LOGGED IN", "LOGGED_IN", "NO CHANGE")
    assert (s.iface_name, s.iface_ip) == ("default", "172.16.160.122")
    assert (s.host_number, s.host_state) == (7, "running")
    [disk] = s.disks
    assert (disk.device, disk.state, disk.host, disk.channel, disk.id, disk.lun) == ("sdb", "running", 7, 0, 0, 0)


def test_session_p3_two_portals_one_failed():
    text = read("iscsiadm", "flatcar349_session_p3.txt") + (
        "\tCurrent Portal: 10.1.53.161:3260,2\n\tPersistent Portal: 10.1.53.161:3260,2\n"
        "\t\tSID: 2\n\t\tiSCSI Connection State: TRANSPORT WAIT\n\t\tiSCSI Session State: FAILED\n"
        "\t\tInternal iscsid Session State: REOPEN\n"
    )
    first, second = parse_iscsiadm_session_p3(text)
    assert second.target == first.target and second.sid == 2
    assert (second.session_state, second.connection_state, second.disks) == ("FAILED", "TRANSPORT WAIT", ())


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_iscsiadm_session, "iscsiadm: initiator reported error (12 - iSCSI driver not found)\n",
         "unexpected line"),
        (parse_iscsiadm_session, "", "empty"),
        (parse_iscsiadm_session_p3, "iSCSI Transport Class version 2.0-870\nversion 2.1.3\n", "no 'Target:'"),
        (parse_iscsiadm_session_p3, "\tCurrent Portal: 10.1.53.160:3260,1\n", "before any 'Target:'"),
        (parse_iscsiadm_session_p3, "tcp: [1] 10.0.0.1:3260,1 iqn.x:t (non-flash)\n", "before any session"),
    ],
)
def test_iscsiadm_garbage_raises(parser, text, message):
    with pytest.raises(ParseError, match=message):
        parser(text)


@pytest.mark.parametrize(
    ("name", "portal", "state", "devices", "reason"),
    [
        ("handbook_connected.txt", "10.10.10.10", IscsictlState.CONNECTED, ("da0",), None),
        ("handbook_waiting_for_iscsid.txt", "10.10.10.10", IscsictlState.NOT_CONNECTED, (), "Waiting for iscsid(8)"),
        ("handbook_connection_refused.txt", "10.10.10.11", IscsictlState.NOT_CONNECTED, (), "Connection refused"),
        ("handbook_not_found.txt", "10.10.10.10", IscsictlState.NOT_CONNECTED, (), "Not found"),
        ("handbook_authentication_failed.txt", "10.10.10.10", IscsictlState.NOT_CONNECTED, (),
         "Authentication failed"),
    ],
)
def test_iscsictl_handbook_states(name, portal, state, devices, reason):
    [s] = parse_iscsictl_list(read("iscsictl", name))
    assert (s.target, s.portal, s.state, s.devices, s.reason) == (
        "iqn.2012-06.com.example:target0", portal, state, devices, reason)


def test_iscsictl_lab_rows_several_luns_discovery_and_empty():
    text = (
        "Target name                          Target portal    State\n"
        "iqn.2016-01.local.sss.private:target0 192.168.56.11    Connected: da4 da5 \n"
        "                                     192.168.56.10    Discovery\n"
        "iqn.2016-01.local.sss.public:target0 192.168.55.10    Disabled\n"
    )
    first, discovery, disabled = parse_iscsictl_list(text)
    assert first.devices == ("da4", "da5") and first.state is IscsictlState.CONNECTED
    assert (discovery.target, discovery.portal, discovery.state) == ("", "192.168.56.10", IscsictlState.DISCOVERY)
    assert disabled.state is IscsictlState.DISABLED
    assert parse_iscsictl_list("Target name                          Target portal    State\n") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("iscsictl: failed to open /dev/iscsi: No such file or directory\n", "is not the 'Target name"),
        ("Target name   Target portal   State\niqn.x:t\n", "lacks a portal or a state"),
    ],
)
def test_iscsictl_garbage_raises(text, message):
    with pytest.raises(ParseError, match=message):
        parse_iscsictl_list(text)
