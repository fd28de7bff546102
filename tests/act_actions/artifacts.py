"""upload-artifact and download-artifact for `nox -s nightly-local`: a run's artifacts are folders under
$BEAST_ACT_DIR/artifacts/<name>, laid out as the hosted actions lay out what they upload and download.

upload (actions/upload-artifact v4 and later): the lines of `path` are files, folders or globs relative to the
workspace, `!` lines exclude; the artifact's root is the least common ancestor of the included paths; hidden
files are left out (include-hidden-files defaults to false); an existing name is an error (artifacts are
immutable); if-no-files-found says what no file means (warn, error, ignore).
download (actions/download-artifact v4 and later): `name` unpacks that artifact into `path`; otherwise every
artifact matching `pattern` (all when empty) into `path/<name>/`, or straight into `path` with merge-multiple.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import shutil
import sys
from pathlib import Path


def store() -> Path:
    return Path(os.environ["BEAST_ACT_DIR"]) / "artifacts"


def notice(kind: str, text: str) -> None:
    print(f"::{kind}::{text}", flush=True)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _excluded(relative: str, excludes: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(prefix, pattern) for pattern in excludes for prefix in prefixes)


def upload(name: str, paths: str, if_no_files_found: str, workspace: Path) -> int:
    lines = [line.strip() for line in paths.splitlines() if line.strip()]
    includes = [line for line in lines if not line.startswith("!")]
    excludes = [os.path.normpath(line[1:].strip()).rstrip("/") for line in lines if line.startswith("!")]
    roots, files = [], []
    for pattern in includes:
        for hit in sorted(glob.glob(pattern, root_dir=workspace, recursive=True)) or []:
            hit_path = workspace / hit
            roots.append(hit_path if hit_path.is_dir() else hit_path.parent)
            candidates = [hit_path] if hit_path.is_file() else [p for p in hit_path.rglob("*") if p.is_file()]
            files += [p for p in candidates if p not in files]
    root = Path(os.path.commonpath(roots)) if roots else workspace
    chosen = []
    for path in files:
        relative_to_workspace = path.relative_to(workspace).as_posix()
        if _excluded(relative_to_workspace, excludes) or _hidden(path.relative_to(root)):
            continue
        chosen.append(path)
    if not chosen:
        text = f"No files were found with the provided path: {paths.strip()}. No artifacts will be uploaded."
        if if_no_files_found == "error":
            notice("error", text)
            return 1
        if if_no_files_found != "ignore":
            notice("warning", text)
        return 0
    target = store() / name
    if target.exists():
        notice("error", f"an artifact named {name} already exists in this run ({target})")
        return 1
    for path in chosen:
        destination = target / path.relative_to(root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    print(f"artifact {name}: {len(chosen)} files from {root} into {target}")
    return 0


def download(name: str, pattern: str, path: str, merge: bool, workspace: Path) -> int:
    destination = workspace / path if path else workspace
    available = sorted(p.name for p in store().iterdir()) if store().is_dir() else []
    if name:
        if name not in available:
            notice("error", f"Artifact not found for name: {name} (this run has: {', '.join(available) or 'none'})")
            return 1
        chosen, merge = [name], True
    else:
        chosen = [a for a in available if fnmatch.fnmatchcase(a, pattern or "*")]
    if not chosen:
        notice("warning", f"no artifact matches {pattern or '*'} in this run ({store()})")
    for artifact in chosen:
        into = destination if merge else destination / artifact
        shutil.copytree(store() / artifact, into, dirs_exist_ok=True)
        print(f"artifact {artifact} into {into}")
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        out.write(f"download-path={destination}\n")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("upload")
    up.add_argument("--name", default="artifact")
    up.add_argument("--path", required=True)
    up.add_argument("--if-no-files-found", default="warn")
    down = sub.add_parser("download")
    down.add_argument("--name", default="")
    down.add_argument("--pattern", default="")
    down.add_argument("--path", default="")
    down.add_argument("--merge-multiple", default="false")
    args = parser.parse_args(argv)
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    if args.verb == "upload":
        return upload(args.name, args.path, args.if_no_files_found, workspace)
    return download(args.name, args.pattern, args.path, args.merge_multiple == "true", workspace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
