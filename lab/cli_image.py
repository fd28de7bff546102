"""`bst image`: the guest images the providers boot. `bst image freebsd` prepares the paper's FreeBSD 10.3 from
the user's file or, when asked, from the FreeBSD project's archive (lab/images/freebsd/download.py), and with
``--box FILE.box`` packs the prepared image as a VirtualBox Vagrant box (lab/images/freebsd/box.py).

Mounted on `bst` by lab/cli.py; its one-line errors and consoles are lab/cli_console.py's, as bst's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab.cli_console import err, fail, out
from lab.errors import LabError

image_app = typer.Typer(help="Guest images the providers boot: prepare the paper's FreeBSD 10.3.",
                        no_args_is_help=True)


@image_app.command("freebsd")
def image_freebsd(
    file: Annotated[Path | None, typer.Argument(
        help="Your FreeBSD 10.3 amd64 image: qcow2, raw, vmdk, a Vagrant .box, or FreeBSD's .qcow2.xz.")] = None,
    download: Annotated[bool, typer.Option(
        "--download", help="Fetch FreeBSD's archived 10.3 image, checked against its CHECKSUM.SHA256.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --download: print the plan, fetch nothing.")] = False,
    mirror: Annotated[str | None, typer.Option(help="With --download: a directory URL holding the same files.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Prepare (and download) again though cached.")] = False,
    box: Annotated[Path | None, typer.Option(
        "--box", metavar="FILE.box",
        help="Then pack the prepared image as a VirtualBox Vagrant box (alone: the image prepared last).")] = None,
) -> None:
    """Prepare the FreeBSD 10.3 image the qemu provider boots, from FILE or the FreeBSD project's archive;
    with --box, pack it as a VirtualBox Vagrant box for `vagrant box add` and BEAST_BOX.

    The preparation is one unattended first boot; the prepared image's path and hash are printed at the end."""
    from rich.progress import DownloadColumn, Progress

    import lab.images.freebsd as freebsd
    from lab.images.freebsd import download as fetcher

    if file is None and not download and box is not None:
        return _pack_current(box)
    if (file is None) == (not download):
        fail("give the FreeBSD 10.3 image FILE or --download (not both): bst image freebsd FILE, "
             "or bst image freebsd --download")
    if not download and (dry_run or mirror):
        fail("--dry-run and --mirror go with --download; bst image freebsd --download --dry-run")

    def say(text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    def byte_progress() -> Progress:
        return Progress(*Progress.get_default_columns(), DownloadColumn(), console=err, transient=True)

    try:
        if download:
            plan = fetcher.download_plan(mirror)
            for line in plan.lines():
                say(line)
            if not force and (done := fetcher.verified_copy(plan)):
                say(f"already downloaded and verified: {done}; nothing is fetched (--force fetches again)")
            if dry_run:
                return
            with byte_progress() as progress:
                source = fetcher.download_freebsd_image(plan, progress=progress, force=force)
            say(f"{plan.image_file} matches {plan.checksum_url}; unpacked to {source}")
        else:
            source = Path(file).expanduser()
            if not source.is_file():
                fail(f"{source} is not a file: give the path of your FreeBSD 10.3 amd64 image (qcow2, raw, vmdk, "
                     "a Vagrant .box or FreeBSD's .qcow2.xz), or use --download")
            if fetcher.is_xz(source):
                if fetcher.check_beside(source):
                    say(f"{source.name} matches the {fetcher.CHECKSUM_FILE} beside it")
                with byte_progress() as progress:
                    source = fetcher.unpack_user_xz(source, progress=progress)
        with Progress(console=err) as progress:
            image = freebsd.prepare_freebsd_image(source, progress=progress, force=force)
    except LabError as error:
        fail(str(error))
    say(f"FreeBSD 10.3 image ready: {image.root_disk}")
    say(f"hash {image.recipe_hash}")
    if box is not None:
        _pack(image, box)


def _pack_current(box: Path) -> None:
    import lab.images.freebsd as freebsd

    image = freebsd.current_freebsd_image()
    if image is None:
        fail("no prepared FreeBSD 10.3 image to pack: bst image freebsd --download --box FILE.box "
             "(or FILE instead of --download)")
    _pack(image, box)


def _pack(image, box: Path) -> None:
    from rich.status import Status

    from lab.images.freebsd import box as boxes

    if image.ssh_key is None:
        fail(f"the prepared image {image.root_disk} has no root key beside it: prepare it again with --force")
    try:
        with Status(f"packing {image.root_disk} as a VirtualBox box", console=err):
            made = boxes.package_box(image.root_disk, box, image.ssh_key, image.recipe_hash)
    except LabError as error:
        fail(str(error))
    name = "beast/FreeBSD-10.3"
    out.print(f"VirtualBox box written: {made}\n"
              f"add it:  vagrant box add --name {name} {made}\n"
              f"use it:  BEAST_BOX={name} bst up --provider virtualbox", markup=False, highlight=False,
              soft_wrap=True)
