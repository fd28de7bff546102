"""zpool status / import parsers against real outputs (tests/fixtures/parsers/zpool_*; see SOURCES.md)."""

from pathlib import Path

import pytest

from lab.errors import ParseError
from lab.parsers.zpool import (
    DataErrorsKind,
    ImportRefusalKind,
    ScanState,
    classify_import_refusal,
    parse_scan,
    parse_zpool_import,
    parse_zpool_status,
)

FIXTURES = Path(__file__).parent / "fixtures" / "parsers"


def status_fixture(name: str):
    return parse_zpool_status((FIXTURES / "zpool_status" / name).read_text())


def import_fixture(name: str) -> str:
    return (FIXTURES / "zpool_import" / name).read_text()


def counts(vdev):
    return (vdev.read_errors, vdev.write_errors, vdev.checksum_errors)


def test_paper_pool_as_created():
    [pool] = status_fixture("paper_ctrl_a_created.txt")
    assert pool.name == "ctrl_a_m0"
    assert pool.state == "ONLINE"
    assert pool.scan.state is ScanState.NONE and pool.scan.kind is None
    assert [v.name for v in pool.config.data] == ["ada1", "ada2"]
    assert pool.config.logs == () and pool.config.cache == ()
    assert pool.errors.kind is DataErrorsKind.NONE and pool.errors.count == 0


def test_paper_both_pools_with_shared_log_and_cache():
    pools = status_fixture("paper_both_pools_with_logs_cache.txt")
    assert [p.name for p in pools] == ["ctrl-a_m0", "ctrl-b_m0"]
    a, b = pools
    assert [v.name for v in a.config.data] == ["ada1", "ada2"]
    assert [(v.name, v.state) for v in a.config.logs] == [("da0", "ONLINE")]
    assert [(v.name, v.state) for v in a.config.cache] == [("da1", "ONLINE")]
    assert [v.name for v in b.config.logs] == ["da2"] and [v.name for v in b.config.cache] == ["da3"]
    assert all(counts(v) == (0, 0, 0) for p in pools for v in p.config.walk())


def test_paper_scrub_after_failover_reports_metadata_errors():
    a, b = status_fixture("paper_scrub_permanent_errors.txt")
    assert a.status == "One or more devices has experienced an error resulting in data corruption. " \
        "Applications may be affected."
    assert a.action == "Restore the file in question if possible. Otherwise restore the entire pool from backup."
    assert a.see == "http://illumos.org/msg/ZFS-8000-8A"
    assert a.scan.kind == "scrub" and a.scan.state is ScanState.FINISHED
    assert a.scan.repaired_bytes == 1024 and a.scan.errors == 2
    assert a.scan.duration == "0h0m" and a.scan.when == "Tue Apr 19 16:07:39 2016"
    assert counts(a.config.root) == (0, 0, 2)
    assert counts(a.config.find("ada1")) == (0, 0, 4)
    assert counts(a.config.find("ada2")) == (0, 0, 10)
    assert a.errors.kind is DataErrorsKind.PERMANENT
    assert a.errors.entries == ("<metadata>:<0x1b>", "<metadata>:<0x20>")
    assert a.errors.count == 2
    assert b.errors.kind is DataErrorsKind.NONE and b.scan.state is ScanState.NONE


def test_openzfs_mirror_with_metadata_errors():
    [pool] = status_fixture("zfs9705_mirror_metadata_errors.txt")
    assert pool.scan.repaired_bytes == 0 and pool.scan.errors == 0
    [mirror] = pool.config.data
    assert mirror.name == "mirror-0" and [c.name for c in mirror.children] == ["sdb", "sdc"]
    assert pool.errors.entries == ("<metadata>:<0x0>", "<metadata>:<0x39>")


def test_kilo_error_counts_and_dataset_and_path_entries():
    [pool] = status_fixture("zfs5193_kilo_counts_dataset_and_path_errors.txt")
    assert pool.scan.errors == 1937 and pool.scan.repaired_bytes == 0
    assert pool.config.root.checksum_errors == round(2.04 * 1024)
    assert pool.config.find("mirror-1").checksum_errors == round(4.09 * 1024)
    assert pool.config.find("vdd").checksum_errors == 4188
    assert pool.errors.entries == (
        "volumes/free/1/be9509b4-cca7-45bc-6b36-46e01a2c755b:<0x1659>",
        "/volumes1/data/free/1/5f9cf209-69d8-4289-56a6-ebc96231bc50/avatar/avatar_20160919042303.jpg",
    )


def test_old_zol_raidz2_with_one_space_scan_key():
    [pool] = status_fixture("zfs1079_raidz2_scrub_repaired_0.txt")
    assert pool.scan.state is ScanState.FINISHED and pool.scan.duration == "1h18m"
    [raidz] = pool.config.data
    assert raidz.name == "raidz2-0" and len(raidz.children) == 4


def test_resilver_in_progress_with_replacing_vdev_and_error_count():
    [pool] = status_fixture("unraid2547_resilver_replacing_count_only.txt")
    assert pool.state == "DEGRADED"
    assert pool.scan.kind == "resilver" and pool.scan.state is ScanState.IN_PROGRESS
    assert pool.scan.percent_done == 46.64
    assert pool.scan.repaired_bytes == round(2.80 * 1024**4)
    assert pool.scan.when == "Thu Feb 19 18:24:38 2026"
    assert pool.config.find("/dev/sdt1").note == "(resilvering)"
    replacing = pool.config.find("replacing-2")
    assert replacing.checksum_errors == 26
    old, new = replacing.children
    assert (old.name, old.state, old.note) == ("11687508470009778260", "UNAVAIL", "was /dev/sdv1/old")
    assert (new.name, new.state) == ("/dev/sdv1", "ONLINE")
    assert pool.errors.kind is DataErrorsKind.COUNT_ONLY and pool.errors.count == 1


def test_freebsd_io_failures_write_errors():
    [pool] = status_fixture("zfs4832_freebsd_io_failures.txt")
    assert counts(pool.config.root) == (0, 169, 0)
    [raidz] = pool.config.data
    assert [c.name for c in raidz.children] == [f"/mnt/test/loop{i}" for i in range(10)]
    assert len(pool.errors.entries) == 8 and pool.errors.entries[-1] == "<metadata>:<0x2b>"


def test_no_pools_available():
    assert status_fixture("zfs1385_no_pools.txt") == []


@pytest.mark.parametrize(
    ("text", "kind", "state", "repaired", "errors"),
    [
        ("scrub repaired 0B in 00:00:01 with 0 errors on Sun Jan  1 00:00:01 2023", "scrub", "finished", 0, 0),
        ("resilvered 1,73T in 18h26m with 1 errors on Fri Jul  6 06:20:41 2018", "resilver", "finished",
         round(1.73 * 1024**4), 1),
        ("scrub canceled on Tue Apr 19 16:07:39 2016", "scrub", "canceled", None, None),
        ("scrub in progress since Thu Aug 17 10:25:48 2017\n    9,12T scanned out of 9,48T at 1,90M/s, "
         "55h33m to go\n    0 repaired, 96,19% done", "scrub", "in_progress", 0, None),
        ("scrub completed after 0h0m with 0 errors on Mon Jan  1 00:00:00 2009", "scrub", "finished", None, 0),
    ],
)
def test_scan_line_forms(text, kind, state, repaired, errors):
    scan = parse_scan(text)
    assert (scan.kind, scan.state.value, scan.repaired_bytes, scan.errors) == (kind, state, repaired, errors)


def test_scan_in_progress_percent_with_decimal_comma():
    scan = parse_scan("scrub in progress since Thu Aug 17 10:25:48 2017\n 0 repaired, 96,19% done")
    assert scan.percent_done == 96.19


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("NAME   SIZE  ALLOC\ntank  1G  1M\n", "expected a 'pool:' line first"),
        ("  pool: tank\n state: ONLINE\n  scan: none requested\nconfig:\n\n\tNAME STATE READ WRITE CKSUM\n"
         "\ttank ONLINE 0 0 0\n", "no 'errors:' line"),
        ("  pool: tank\n state: ONLINE\n", "no 'config:' section"),
        ("  pool: tank\n state: ONLINE\n  scan: resilver exploded\nconfig:\n\n\ttank ONLINE 0 0 0\n\n"
         "errors: No known data errors\n", "unknown 'scan:' text"),
        ("  pool: tank\n state: ONLINE\nconfig:\n\n\ttank SHINY 0 0 0\n\nerrors: No known data errors\n",
         "unknown state 'SHINY'"),
        ("  pool: tank\n state: ONLINE\nconfig:\n\n\ttank ONLINE 0 0 0\n\nerrors: Something odd\n",
         "unknown 'errors:' text"),
        ("  pool: tank\n state: ONLINE\nconfig:\n\n\ttank ONLINE 0 0 0\n\t     sda ONLINE 0 0 0\n\n"
         "errors: No known data errors\n", "not aligned"),
        ("  pool: tank\n state: ONLINE\nconfig:\n\n\ttank ONLINE 0 0 0\n\nerrors: Permanent errors have been "
         "detected in the following files:\n", "lists no files"),
    ],
)
def test_status_garbage_raises_helpful_error(text, message):
    with pytest.raises(ParseError, match=message) as raised:
        parse_zpool_status(text)
    assert str(raised.value).startswith("zpool status:")


def test_import_listing_online_pool():
    [pool] = parse_zpool_import(import_fixture("zfs5840_listing_online.txt"))
    assert (pool.name, pool.id, pool.state) == ("tank", 877838307015933496, "ONLINE")
    assert pool.action == "The pool can be imported using its name or numeric identifier."
    assert pool.status is None
    assert [v.name for v in pool.config.data] == ["sdb"]
    assert pool.config.root.read_errors is None


def test_import_listing_last_accessed_by_another_system():
    [pool] = parse_zpool_import(import_fixture("zfs1114_listing_last_accessed_elsewhere.txt"))
    assert pool.status == "The pool was last accessed by another system."
    assert pool.action.endswith("and the '-f' flag.")
    assert pool.see == "http://zfsonlinux.org/msg/ZFS-8000-EY"
    assert len(pool.config.find("raidz2-0").children) == 4


def test_import_listing_2x_wording():
    [pool] = parse_zpool_import(import_fixture("webzfs189_listing_2x_last_accessed.txt"))
    assert pool.id == 966937180821990261
    assert [v.name for v in pool.config.data] == ["50f865c5-15cf-41e0-b1c4-c9d45571a930"]


def test_import_listing_multihost_pool_in_use():
    [pool] = parse_zpool_import(import_fixture("zfs12677_listing_multihost_unavail.txt"))
    assert pool.state == "UNAVAIL"
    assert pool.config.root.note == "currently in use"
    raidz = pool.config.find("raidz3-0")
    assert raidz.state == "DEGRADED" and len(raidz.children) == 15
    assert pool.config.find("nvme-Micron_9300_MTFDHAL12T8TDR_21172EAC0D8A").state == "UNAVAIL"


def test_import_listing_empty_and_garbage():
    assert parse_zpool_import("no pools available to import\n") == []
    with pytest.raises(ParseError, match="zpool import: pool 'tank' has no 'id:' line"):
        parse_zpool_import("   pool: tank\n  state: ONLINE\n config:\n\n\ttank ONLINE\n")


@pytest.mark.parametrize(
    ("name", "kind", "pool", "host", "hostid"),
    [
        ("refusal_lxd32_previously_in_use.txt", ImportRefusalKind.IN_USE_ELSEWHERE, "default", "icarus",
         0xD4AD37E3),
        ("refusal_archzfs603_last_access.txt", ImportRefusalKind.IN_USE_ELSEWHERE, "rpool", "archlinux",
         0x106BB6C4),
        ("refusal_zfs4658_may_be_in_use_old.txt", ImportRefusalKind.IN_USE_ELSEWHERE, "tank", "localhost",
         0x11AABB),
        ("refusal_zfs18823_mmp_imported_on_host.txt", ImportRefusalKind.IMPORTED_ON_OTHER_HOST, "p02",
         "<unknown>", 0),
        ("refusal_zfs11960_no_such_pool.txt", ImportRefusalKind.NO_SUCH_POOL, "testpsko", None, None),
        ("refusal_zfs10781_name_exists.txt", ImportRefusalKind.NAME_EXISTS, "pool1", None, None),
        ("refusal_zfs9313_devices_unavailable.txt", ImportRefusalKind.DEVICES_UNAVAILABLE, "zpih2t", None, None),
    ],
)
def test_import_refusals(name, kind, pool, host, hostid):
    refusal = classify_import_refusal(import_fixture(name))
    assert (refusal.kind, refusal.pool, refusal.host, refusal.hostid) == (kind, pool, host, hostid)
    assert refusal.message.startswith(f"cannot import '{pool}'")


def test_import_refusal_keeps_last_access_time():
    refusal = classify_import_refusal(import_fixture("refusal_lxd32_previously_in_use.txt"))
    assert refusal.last_accessed == "Mon Feb 5 11:16:40 2018"


def test_import_refusal_mmp_with_real_host():
    refusal = classify_import_refusal(
        "cannot import 'ctrl-a_m0': pool is imported on host 'ctrl-a' (hostid=8a3e1f02).\n"
        "Export the pool on the other system, then run 'zpool import'.\n"
    )
    assert (refusal.host, refusal.hostid) == ("ctrl-a", 0x8A3E1F02)


def test_import_refusal_unknown_reason_is_other_and_non_refusal_raises():
    refusal = classify_import_refusal("cannot import 'tank': I/O error\n\tDestroy and re-create the pool\n")
    assert refusal.kind is ImportRefusalKind.OTHER
    with pytest.raises(ParseError, match="zpool import: no \"cannot import"):
        classify_import_refusal("internal error: Value too large for defined data type\n")
