"""The FreeBSD project's own VM image of 10.3-RELEASE (amd64, qcow2), fetched only when the user asks, checked
against the CHECKSUM.SHA256 published beside it, then decompressed for the preparation boot.

Facts, and where they come from:
- FreeBSD moves end-of-life releases to its archive: "current releases from
  https://download.freebsd.org/releases/VM-IMAGES/ and EOL releases from
  https://archive.freebsd.org/old-releases/VM-IMAGES/" (https://www.freebsd.org/where/); the same tree is
  served as http://ftp-archive.freebsd.org/pub/FreeBSD-Archive/old-releases/VM-IMAGES/ (plain http only,
  as lima-vm's hack/update-template-freebsd.sh notes), so the https name is the default.
- The file names: releng/10.x release/Makefile.vm copies each VM format to ``${OSRELEASE}.${FORMAT}``
  (OSRELEASE = FreeBSD-10.3-RELEASE-amd64), compresses it with xz (WITH_COMPRESSED_VMIMAGES), then runs
  ``sha256 ${OSRELEASE}* > CHECKSUM.SHA256`` in that directory: one line per file, in BSD sha256(1)'s form
  ``SHA256 (FreeBSD-10.3-RELEASE-amd64.qcow2.xz) = <64 hex>`` (the .raw.xz, .vhd.xz and .vmdk.xz too).
"""

from __future__ import annotations

import hashlib
import http.client
import lzma
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from lab.errors import LabError
from lab.images import default_cache_dir
from lab.images.cache import build_lock

RELEASE = "10.3-RELEASE"
ARCHIVE_BASE_URL = f"https://archive.freebsd.org/old-releases/VM-IMAGES/{RELEASE}/amd64/Latest/"
IMAGE_FILE = f"FreeBSD-{RELEASE}-amd64.qcow2.xz"
CHECKSUM_FILE = "CHECKSUM.SHA256"
ALGORITHM = "SHA256"
DOWNLOAD_DIR = f"downloads/freebsd-{RELEASE}-amd64"
XZ_MAGIC = b"\xfd7zXZ\x00"
TIMEOUT_S = 60.0
"""Seconds a connect or a single read may take before the download is given up."""
CHUNK = 1024 * 1024
CHECKSUM_FILE_MAX_BYTES = 1024 * 1024
VERIFIED_SUFFIX = ".verified"
"""Beside the decompressed image: the published checksum line its .xz matched, so a rerun needs no network."""


@dataclass(frozen=True)
class DownloadPlan:
    """What `bst image freebsd --download` fetches, how it checks it, and where each file lands."""

    base_url: str
    download_dir: Path
    image_file: str = IMAGE_FILE
    checksum_file: str = CHECKSUM_FILE
    algorithm: str = ALGORITHM

    @property
    def image_url(self) -> str:
        return self.base_url + self.image_file

    @property
    def checksum_url(self) -> str:
        return self.base_url + self.checksum_file

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or self.base_url

    @property
    def compressed_path(self) -> Path:
        return self.download_dir / self.image_file

    @property
    def image_path(self) -> Path:
        """The decompressed qcow2 the preparation boot starts from."""
        return self.download_dir / self.image_file.removesuffix(".xz")

    @property
    def verified_marker(self) -> Path:
        return self.image_path.with_name(self.image_path.name + VERIFIED_SUFFIX)

    def lines(self) -> list[str]:
        """The plan in words, printed before anything is fetched."""
        return [
            f"fetch   {self.image_url}",
            f"check   its {self.algorithm} against the line for {self.image_file} in {self.checksum_url}",
            f"save    {self.compressed_path} (renamed from a .part file only once the {self.algorithm} matches)",
            f"unpack  xz -> {self.image_path} (then the .xz is deleted)",
        ]


def download_plan(mirror: str | None = None, cache_dir: Path | None = None) -> DownloadPlan:
    """The plan for the archive (or ``mirror``: a URL of a directory holding the same two files)."""
    base = ARCHIVE_BASE_URL if mirror is None else _checked_mirror(mirror)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    return DownloadPlan(base_url=base, download_dir=cache / DOWNLOAD_DIR)


def _checked_mirror(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise LabError(
            f"--mirror {url!r} is not an http(s) URL of a directory; give one holding {IMAGE_FILE} and "
            f"{CHECKSUM_FILE}, e.g. {ARCHIVE_BASE_URL}"
        )
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/"))


def published_digest(checksum_text: str, file_name: str, source: str) -> str:
    """The hex digest ``CHECKSUM.SHA256`` publishes for ``file_name`` (BSD form: ``SHA256 (name) = hex``)."""
    pattern = re.compile(rf"^{ALGORITHM} \({re.escape(file_name)}\) = ([0-9a-fA-F]{{64}})\s*$")
    for line in checksum_text.splitlines():
        found = pattern.match(line.strip())
        if found:
            return found.group(1).lower()
    raise LabError(
        f"{source} has no '{ALGORITHM} ({file_name}) = ...' line: it is not FreeBSD's checksum file for "
        f"{RELEASE}; check --mirror points at the directory holding {file_name}"
    )


def is_xz(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(XZ_MAGIC)) == XZ_MAGIC


def verified_copy(plan: DownloadPlan) -> Path | None:
    """The image a previous download verified and unpacked, if it is still there."""
    if plan.image_path.is_file() and plan.verified_marker.is_file():
        return plan.image_path
    return None


def download_freebsd_image(plan: DownloadPlan, progress: Progress | None = None, timeout: float = TIMEOUT_S,
                           force: bool = False) -> Path:
    """Fetch, verify and unpack the image; the decompressed qcow2's path. Nothing half-written is left behind:
    every file is written under a .part name and renamed only when complete (and, for the .xz, verified)."""
    if not force and (done := verified_copy(plan)):
        return done
    plan.download_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(plan.download_dir / ".lock"):
        if not force and (done := verified_copy(plan)):
            return done
        checksum_text = _fetch_text(plan, plan.checksum_url, timeout)
        expected = published_digest(checksum_text, plan.image_file, plan.checksum_url)
        plan.verified_marker.unlink(missing_ok=True)
        _fetch_verified(plan, expected, progress, timeout)
        decompress_xz(plan.compressed_path, plan.image_path, progress)
        plan.verified_marker.write_text(f"{ALGORITHM} ({plan.image_file}) = {expected}\n")
        plan.compressed_path.unlink()
    return plan.image_path


def _fetch_text(plan: DownloadPlan, url: str, timeout: float) -> str:
    with _opened(plan, url, timeout) as response:
        body = response.read(CHECKSUM_FILE_MAX_BYTES + 1)
    if len(body) > CHECKSUM_FILE_MAX_BYTES:
        raise LabError(f"{url} is over {CHECKSUM_FILE_MAX_BYTES} bytes: not a checksum file; check --mirror")
    return body.decode("utf-8", errors="replace")


def _fetch_verified(plan: DownloadPlan, expected: str, progress: Progress | None, timeout: float) -> None:
    dest = plan.compressed_path
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    task = None
    try:
        with _opened(plan, plan.image_url, timeout) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress is not None:
                task = progress.add_task(f"downloading {plan.image_file}", total=total)
            received = _copy(plan, response, out, digest,
                             (lambda n: progress.advance(task, n)) if progress is not None else None)
        if total is not None and received != total:
            raise LabError(
                f"the download of {plan.image_url} ended after {received} of {total} bytes: "
                f"{plan.host} closed the connection; run the same command again"
            )
        if digest.hexdigest() != expected:
            raise LabError(
                f"{plan.image_file} from {plan.host} has {ALGORITHM} {digest.hexdigest()}, but {plan.checksum_url} "
                f"publishes {expected}: the file is damaged or not FreeBSD's; nothing was kept, run it again "
                f"(or use another --mirror)"
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
        if progress is not None and task is not None:
            progress.remove_task(task)


def _copy(plan: DownloadPlan, response, out, digest, advance: Callable[[int], None] | None) -> int:
    received = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except (OSError, http.client.HTTPException) as error:
            raise LabError(_unreachable(plan, f"the connection broke after {received} bytes: {_why(error)}")) from None
        if not chunk:
            return received
        out.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        if advance is not None:
            advance(len(chunk))


class _opened:
    """``urlopen`` whose failures are one line: a refused or unreachable host says how to do it offline."""

    def __init__(self, plan: DownloadPlan, url: str, timeout: float):
        self.plan, self.url, self.timeout = plan, url, timeout
        self.response = None

    def __enter__(self):
        request = urllib.request.Request(self.url, headers={"User-Agent": "beast-lab"})
        try:
            self.response = urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 (http/https only)
        except urllib.error.HTTPError as error:
            error.close()
            raise LabError(
                f"{self.plan.host} answered HTTP {error.code} ({error.reason}) for {self.url}: the file is not "
                f"there; check --mirror points at the {RELEASE} amd64 VM-IMAGES directory"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise LabError(_unreachable(self.plan, _why(error))) from None
        return self.response

    def __exit__(self, *exc) -> None:
        if self.response is not None:
            self.response.close()


def _why(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    return str(reason) or type(reason).__name__


def _unreachable(plan: DownloadPlan, why: str) -> str:
    return (
        f"cannot reach {plan.host} to download FreeBSD {RELEASE} ({why}): download {plan.image_file} and "
        f"{plan.checksum_file} from {plan.base_url} on a machine with internet into one directory (the image "
        f"is checked against the {plan.checksum_file} beside it), then run `bst image freebsd FILE`"
    )


def decompress_xz(source: Path, dest: Path, progress: Progress | None = None) -> Path:
    """Unpack an .xz into ``dest`` through a .part file (Python's lzma; no xz program needed)."""
    part = dest.with_name(dest.name + ".part")
    task = progress.add_task(f"unpacking {source.name}", total=source.stat().st_size) if progress else None
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    try:
        with open(source, "rb") as packed, open(part, "wb") as out:
            while chunk := packed.read(CHUNK):
                try:
                    out.write(decompressor.decompress(chunk))
                except lzma.LZMAError as error:
                    raise LabError(f"{source} is not a whole xz file ({error}): download it again") from None
                if progress is not None and task is not None:
                    progress.advance(task, len(chunk))
        if not decompressor.eof:
            raise LabError(f"{source} ends before its xz stream does (truncated): download it again")
        os.replace(part, dest)
    finally:
        with suppress(FileNotFoundError):
            part.unlink()
        if progress is not None and task is not None:
            progress.remove_task(task)
    return dest


def check_beside(path: Path) -> str | None:
    """Check the user's ``path`` against a CHECKSUM.SHA256 in its directory, as FreeBSD publishes it; the
    digest that matched, or None when there is no such file or it has no line for this name."""
    checksum = path.parent / CHECKSUM_FILE
    if not checksum.is_file():
        return None
    try:
        expected = published_digest(checksum.read_text(errors="replace"), path.name, str(checksum))
    except LabError:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise LabError(
            f"{path} has {ALGORITHM} {digest.hexdigest()}, but {checksum} lists {expected}: the file is damaged "
            f"or not the one the checksum file is for; download it again"
        )
    return expected


def unpack_user_xz(source: Path, cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """The user's .xz image unpacked once into the cache (keyed like its converted copy) for the preparation."""
    from lab.images.freebsd.source import source_key

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    dest_dir = cache / "downloads" / f"unpacked-{source_key(source)[:12]}"
    dest = dest_dir / (source.name.removesuffix(".xz") if source.name.endswith(".xz") else source.name + ".img")
    if dest.is_file():
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(dest_dir / ".lock"):
        if not dest.is_file():
            decompress_xz(source, dest, progress)
    return dest
