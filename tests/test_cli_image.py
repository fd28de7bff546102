"""`bst image freebsd`: the user's file (an .xz unpacked first) or the archive's image (plan printed before
anything is fetched) goes to the preparation boot; bad input and no network are one line and exit 2.
The preparation itself is replaced by a recorder here: only the handing over is this command's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_freebsd_download import IMAGE, PACKED, archive, checksum_file, closed_port, serving
from typer.testing import CliRunner

import lab.images.freebsd as freebsd
from lab import cli
from lab.images import GuestImage
from lab.images.freebsd import download as dl


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[Path, bytes]]:
    """Each call of prepare_freebsd_image: the path it was given and that file's bytes."""
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    calls: list[tuple[Path, bytes]] = []

    def prepare(source, cache_dir=None, progress=None, accel=None, force=False) -> GuestImage:
        calls.append((Path(source), Path(source).read_bytes()))
        return GuestImage(name="freebsd-10.3", root_disk=tmp_path / "cache/images/freebsd-abc/root.qcow2",
                          kernel=None, initrd=None, recipe_hash="abc123def456" * 4, root_device="/dev/ada0")

    monkeypatch.setattr(freebsd, "prepare_freebsd_image", prepare, raising=False)
    return calls


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the command tried to fetch something")

    monkeypatch.setattr("urllib.request.urlopen", refuse)


def bst(*args: str):
    return CliRunner().invoke(cli.app, ["image", "freebsd", *args])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_the_users_image_is_prepared_and_its_path_and_hash_printed(prepared, tmp_path):
    image = tmp_path / "freebsd.qcow2"
    image.write_bytes(IMAGE)
    result = bst(str(image))
    assert result.exit_code == 0, result.output
    assert prepared == [(image, IMAGE)]
    assert f"FreeBSD 10.3 image ready: {tmp_path / 'cache/images/freebsd-abc/root.qcow2'}" in result.stdout
    assert "hash " + "abc123def456" * 4 in result.stdout


def test_the_users_xz_is_unpacked_before_the_preparation(prepared, tmp_path):
    packed = tmp_path / dl.IMAGE_FILE
    packed.write_bytes(PACKED)
    (tmp_path / dl.CHECKSUM_FILE).write_bytes(checksum_file())
    result = bst(str(packed))
    assert result.exit_code == 0, result.output
    [(given, content)] = prepared
    assert content == IMAGE and given.name == "FreeBSD-10.3-RELEASE-amd64.qcow2"
    assert "matches the CHECKSUM.SHA256 beside it" in result.stdout


def test_a_users_xz_that_does_not_match_the_checksum_beside_it_is_not_prepared(prepared, tmp_path):
    packed = tmp_path / dl.IMAGE_FILE
    packed.write_bytes(PACKED)
    (tmp_path / dl.CHECKSUM_FILE).write_text(f"SHA256 ({dl.IMAGE_FILE}) = {hashlib.sha256(b'other').hexdigest()}\n")
    assert "the file is damaged" in one_error_line(bst(str(packed)))
    assert prepared == []


def test_dry_run_prints_what_would_be_fetched_and_checked_and_fetches_nothing(prepared, no_network, tmp_path):
    result = bst("--download", "--dry-run")
    assert result.exit_code == 0, result.output
    plan = dl.download_plan()
    for part in (plan.image_url, plan.checksum_url, "SHA256", dl.IMAGE_FILE, str(plan.compressed_path),
                 str(plan.image_path)):
        assert part in result.stdout
    assert prepared == []
    assert not plan.download_dir.exists()


def test_download_prints_the_plan_then_fetches_verifies_unpacks_and_prepares(prepared, tmp_path):
    with serving(archive()) as (base, asked):
        result = bst("--download", "--mirror", base)
    assert result.exit_code == 0, result.output
    assert asked == ["/pub/10.3/CHECKSUM.SHA256", "/pub/10.3/" + dl.IMAGE_FILE]
    assert result.stdout.index(base + dl.IMAGE_FILE) < result.stdout.index(f"{dl.IMAGE_FILE} matches {base}")
    [(given, content)] = prepared
    assert content == IMAGE and given == dl.download_plan(base).image_path


def test_a_second_download_says_it_has_the_verified_copy_and_fetches_nothing(prepared, tmp_path):
    with serving(archive()) as (base, _):
        assert bst("--download", "--mirror", base).exit_code == 0
    result = bst("--download", "--mirror", base)
    assert result.exit_code == 0, result.output
    assert f"already downloaded and verified: {dl.download_plan(base).image_path}" in result.stdout
    assert len(prepared) == 2


def test_download_without_network_refuses_in_one_line(prepared, tmp_path):
    line = one_error_line(bst("--download", "--mirror", f"http://127.0.0.1:{closed_port()}/"))
    assert line.startswith("error: cannot reach 127.0.0.1 to download FreeBSD 10.3-RELEASE")
    assert line.endswith("then run `bst image freebsd FILE`")
    assert prepared == []


@pytest.mark.parametrize(("args", "message"), [
    ((), "give the FreeBSD 10.3 image FILE or --download"),
    (("x.qcow2", "--download"), "give the FreeBSD 10.3 image FILE or --download (not both)"),
    (("x.qcow2", "--dry-run"), "--dry-run and --mirror go with --download"),
    (("--download", "--mirror", "ftp://ftp-archive.freebsd.org/"), "is not an http(s) URL of a directory"),
    (("/nonexistent/FreeBSD.qcow2",), "/nonexistent/FreeBSD.qcow2 is not a file: give the path of your FreeBSD 10.3"),
])
def test_bad_input_is_one_line_and_exit_2(prepared, no_network, args, message):
    assert message in one_error_line(bst(*args))
    assert prepared == []
