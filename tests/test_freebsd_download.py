"""The FreeBSD 10.3 download against a loopback HTTP server of our own (never a real host): the plan, the
published-checksum check, nothing half-written left behind, and a clean one-line refusal without network."""

from __future__ import annotations

import hashlib
import io
import lzma
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console
from rich.progress import Progress

from lab.errors import LabError
from lab.images.freebsd import download as dl

IMAGE = b"QFI\xfb\x00\x00\x00\x03" + bytes(range(256)) * 64
"""A stand-in qcow2: its real magic, then bytes xz must carry exactly."""
PACKED = lzma.compress(IMAGE, format=lzma.FORMAT_XZ)
OTHER_LINES = (
    "SHA256 (FreeBSD-10.3-RELEASE-amd64.raw.xz) = " + "1" * 64,
    "SHA256 (FreeBSD-10.3-RELEASE-amd64.vhd.xz) = " + "2" * 64,
)
"""Release/Makefile.vm checksums every format with one `sha256 ${OSRELEASE}*`: our line sits among others."""


def checksum_file(body: bytes = PACKED, name: str = dl.IMAGE_FILE) -> bytes:
    line = f"SHA256 ({name}) = {hashlib.sha256(body).hexdigest()}"
    return "\n".join([OTHER_LINES[0], line, OTHER_LINES[1], ""]).encode()


@contextmanager
def serving(files: dict[str, bytes], claimed_length: dict[str, int] | None = None) -> Iterator[tuple[str, list]]:
    """An HTTP server on 127.0.0.1 serving ``files`` by path (404 otherwise); the base URL and the paths asked."""
    asked: list[str] = []
    claimed_length = claimed_length or {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(claimed_length.get(self.path, len(body))))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pub/10.3/", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def archive(checksums: bytes | None = None, image: bytes = PACKED) -> dict[str, bytes]:
    return {"/pub/10.3/" + dl.IMAGE_FILE: image,
            "/pub/10.3/" + dl.CHECKSUM_FILE: checksum_file() if checksums is None else checksums}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leftovers(plan: dl.DownloadPlan) -> list[str]:
    if not plan.download_dir.exists():
        return []
    return sorted(p.name for p in plan.download_dir.iterdir() if p.name != ".lock")


def test_the_default_plan_fetches_the_archived_qcow2_and_its_checksum_file_into_the_cache(tmp_path):
    plan = dl.download_plan(cache_dir=tmp_path)
    assert plan.image_url == ("https://archive.freebsd.org/old-releases/VM-IMAGES/10.3-RELEASE/amd64/Latest/"
                              "FreeBSD-10.3-RELEASE-amd64.qcow2.xz")
    assert plan.checksum_url.endswith("/10.3-RELEASE/amd64/Latest/CHECKSUM.SHA256")
    assert plan.algorithm == "SHA256"
    assert plan.compressed_path == tmp_path / "downloads" / "freebsd-10.3-RELEASE-amd64" / dl.IMAGE_FILE
    assert plan.image_path.name == "FreeBSD-10.3-RELEASE-amd64.qcow2"
    text = "\n".join(plan.lines())
    for part in (plan.image_url, plan.checksum_url, str(plan.compressed_path), str(plan.image_path)):
        assert part in text


def test_the_cache_dir_defaults_to_the_labs_image_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BEAST_LAB_CACHE", str(tmp_path / "cache"))
    assert dl.download_plan().download_dir.is_relative_to(tmp_path / "cache")


def test_a_mirror_replaces_the_base_url_and_gets_its_trailing_slash(tmp_path):
    plan = dl.download_plan("https://mirror.example/freebsd/10.3", cache_dir=tmp_path)
    assert plan.image_url == "https://mirror.example/freebsd/10.3/" + dl.IMAGE_FILE
    assert plan.host == "mirror.example"


@pytest.mark.parametrize("mirror", ["ftp://ftp-archive.freebsd.org/pub/", "archive.freebsd.org/x", "file:///tmp/x",
                                    "https://h/x?y=1"])
def test_a_mirror_that_is_not_an_http_directory_url_is_refused(tmp_path, mirror):
    with pytest.raises(LabError, match="is not an http\\(s\\) URL of a directory"):
        dl.download_plan(mirror, cache_dir=tmp_path)


def test_the_published_digest_is_read_from_bsd_sha256_lines_for_our_file_only():
    text = checksum_file().decode()
    assert dl.published_digest(text, dl.IMAGE_FILE, "x") == hashlib.sha256(PACKED).hexdigest()
    with pytest.raises(LabError, match=r"has no 'SHA256 \(FreeBSD-10.3-RELEASE-amd64.qcow2.xz\) = \.\.\.' line"):
        dl.published_digest(checksum_file(name=dl.IMAGE_FILE + ".old").decode(), dl.IMAGE_FILE, "x")
    gnu_form = f"{hashlib.sha256(PACKED).hexdigest()}  {dl.IMAGE_FILE}\n"
    with pytest.raises(LabError):
        dl.published_digest(gnu_form, dl.IMAGE_FILE, "x")


def test_a_verified_download_is_unpacked_and_only_the_image_and_its_record_remain(tmp_path):
    with serving(archive()) as (base, asked):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        with Progress(console=Console(file=io.StringIO())) as progress:
            image = dl.download_freebsd_image(plan, progress=progress)
    assert image == plan.image_path and image.read_bytes() == IMAGE
    assert asked == ["/pub/10.3/CHECKSUM.SHA256", "/pub/10.3/" + dl.IMAGE_FILE]
    assert leftovers(plan) == sorted([image.name, plan.verified_marker.name])
    assert hashlib.sha256(PACKED).hexdigest() in plan.verified_marker.read_text()


def test_a_verified_copy_is_reused_without_the_network(tmp_path):
    with serving(archive()) as (base, _):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        dl.download_freebsd_image(plan)
    assert dl.download_freebsd_image(plan, timeout=1) == plan.image_path


def test_a_checksum_mismatch_is_one_error_and_leaves_nothing(tmp_path):
    with serving(archive(image=PACKED[:-1] + b"\x00")) as (base, _):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        with pytest.raises(LabError, match="publishes") as error:
            dl.download_freebsd_image(plan)
    assert "\n" not in str(error.value) and "nothing was kept" in str(error.value)
    assert leftovers(plan) == []


def test_a_checksum_file_without_our_line_is_one_error_before_the_image_is_fetched(tmp_path):
    with serving(archive(checksums="\n".join(OTHER_LINES).encode())) as (base, asked):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        with pytest.raises(LabError, match="has no 'SHA256 \\(FreeBSD-10.3-RELEASE-amd64.qcow2.xz\\)"):
            dl.download_freebsd_image(plan)
    assert asked == ["/pub/10.3/CHECKSUM.SHA256"]
    assert leftovers(plan) == []


def test_a_missing_file_is_the_http_status_and_what_to_check(tmp_path):
    files = archive()
    del files["/pub/10.3/" + dl.IMAGE_FILE]
    with serving(files) as (base, _):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        with pytest.raises(LabError, match="127.0.0.1 answered HTTP 404 .* check --mirror"):
            dl.download_freebsd_image(plan)
    assert leftovers(plan) == []


def test_a_download_cut_short_is_one_error_and_leaves_nothing(tmp_path):
    path = "/pub/10.3/" + dl.IMAGE_FILE
    with serving(archive(), claimed_length={path: len(PACKED) + 1000}) as (base, _):
        plan = dl.download_plan(base, cache_dir=tmp_path)
        with pytest.raises(LabError, match="run the same command again|the connection broke"):
            dl.download_freebsd_image(plan, timeout=2)
    assert leftovers(plan) == []


def test_no_network_is_one_line_saying_how_to_do_it_offline(tmp_path):
    plan = dl.download_plan(f"http://127.0.0.1:{closed_port()}/old-releases/", cache_dir=tmp_path)
    with pytest.raises(LabError) as error:
        dl.download_freebsd_image(plan, timeout=2)
    message = str(error.value)
    assert message.startswith("cannot reach 127.0.0.1 to download FreeBSD 10.3-RELEASE (")
    assert "refused" in message.lower() and "\n" not in message
    assert f"download {dl.IMAGE_FILE} and CHECKSUM.SHA256" in message
    assert message.endswith("then run `bst image freebsd FILE`")
    assert leftovers(plan) == []


def test_a_host_that_never_answers_times_out_in_one_line(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        plan = dl.download_plan(f"http://127.0.0.1:{silent.getsockname()[1]}/", cache_dir=tmp_path)
        with pytest.raises(LabError, match=r"cannot reach 127.0.0.1 .*\(timed out\)"):
            dl.download_freebsd_image(plan, timeout=0.5)


def test_a_damaged_xz_is_one_error_and_no_partial_image(tmp_path):
    packed = tmp_path / "x.qcow2.xz"
    packed.write_bytes(PACKED[: len(PACKED) // 2])
    with pytest.raises(LabError, match="truncated|not a whole xz file"):
        dl.decompress_xz(packed, tmp_path / "x.qcow2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.qcow2.xz"]


def test_the_users_xz_is_checked_against_a_checksum_file_beside_it(tmp_path):
    packed = tmp_path / dl.IMAGE_FILE
    packed.write_bytes(PACKED)
    assert dl.check_beside(packed) is None
    (tmp_path / dl.CHECKSUM_FILE).write_bytes(checksum_file())
    assert dl.check_beside(packed) == hashlib.sha256(PACKED).hexdigest()
    packed.write_bytes(PACKED + b"\x00")
    with pytest.raises(LabError, match="the file is damaged"):
        dl.check_beside(packed)


def test_the_users_xz_is_unpacked_once_into_the_cache(tmp_path):
    packed = tmp_path / "mine.qcow2.xz"
    packed.write_bytes(PACKED)
    image = dl.unpack_user_xz(packed, cache_dir=tmp_path / "cache")
    assert image.name == "mine.qcow2" and image.read_bytes() == IMAGE
    assert image.is_relative_to(tmp_path / "cache" / "downloads")
    assert dl.unpack_user_xz(packed, cache_dir=tmp_path / "cache") == image
