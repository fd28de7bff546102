"""`nox -s nightly-local -- JOB...`: .github/workflows/nightly.yml run on this machine through act, without Docker
(the runner label mapped to ``-self-hosted``) and without GitHub (each hosted action replaced by our stand-in under
tests/act_actions, by ``--local-repository``).

What act is given is the workflow's own text restricted to the asked jobs: act plans every job a job ``needs``
(pkg/model/planner.go, createStages) and has no flag against it, and running the report job alone must not start
the drill jobs (they boot VMs; their ``if: always()`` teardown steps would run ``lab-down`` on this host). So the
other jobs' blocks are cut out and ``needs`` keeps only the asked jobs; every other byte of the asked jobs, and
the workflow's name, triggers, permissions and env, are as GitHub runs them (tests/test_nightly_local.py checks
that). A run starts with an empty artifact store, as a GitHub run does; when the report job is asked without any
job that uploads a run folder, the store is seeded with one small stored run folder (tests/fixtures/runs) as the
artifact a drill job would have uploaded, which the download stand-in hands to the report job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
ACTIONS = ROOT / "tests" / "act_actions"
FIXTURE_RUN = ROOT / "tests" / "fixtures" / "runs" / "20240424T230640Z-failover"
FIXTURE_ARTIFACT = "run-failover-paper"
"""The stored run is the paper-mode kill of ctrl-a, so it stands where the drill job (failover, paper) uploads."""
DEFAULT_ACT_DIR = ROOT / ".nox" / "act"
EVENT = "workflow_dispatch"
JOB_HEADER = re.compile(r"^  ([A-Za-z_][\w-]*):\s*$")
NEEDS_LINE = re.compile(r"^    needs:.*$")


def load(text: str) -> dict:
    """The workflow as data; YAML 1.1 reads the key ``on`` as True, given back its name."""
    data = yaml.safe_load(text)
    if True in data:
        data["on"] = data.pop(True)
    return data


def job_ids(text: str) -> list[str]:
    return list(load(text)["jobs"])


def uses(text: str) -> list[str]:
    """Every ``uses:`` of the workflow, in order, without repeats (``owner/repo[/path]@ref``)."""
    found: list[str] = []
    for job in load(text)["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step and step["uses"] not in found:
                found.append(step["uses"])
    return found


def local_repositories(text: str, actions: Path = ACTIONS) -> list[str]:
    """``owner/repo@ref=DIR`` for each action repository the workflow uses: actions/<name> -> tests/act_actions/<name>
    (a sub-action such as actions/cache/restore is the folder restore/ of the stand-in for actions/cache)."""
    mapping: list[str] = []
    for use in uses(text):
        reference, _, ref = use.partition("@")
        owner, name, *subpath = reference.split("/")
        stand_in = actions / name
        if owner != "actions" or not (stand_in / Path(*subpath) / "action.yml").is_file():
            raise SystemExit(f"the nightly uses {use}, which has no local stand-in: add "
                             f"{(stand_in / Path(*subpath) / 'action.yml').relative_to(ROOT)}")
        entry = f"{owner}/{name}@{ref}={stand_in}"
        if entry not in mapping:
            mapping.append(entry)
    return mapping


def runner_labels(text: str) -> list[str]:
    return sorted({job["runs-on"] for job in load(text)["jobs"].values()})


def restricted(text: str, wanted: list[str]) -> str:
    """The workflow's text with only the ``wanted`` jobs, each ``needs`` keeping only wanted jobs."""
    known = job_ids(text)
    unknown = [job for job in wanted if job not in known]
    if unknown or not wanted:
        raise SystemExit(f"no job {', '.join(unknown) or '(none given)'} in {WORKFLOW.name}; "
                         f"its jobs: {' '.join(known)}")
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    in_jobs, current = False, None
    for line in lines:
        if line.startswith("jobs:"):
            in_jobs = True
            out.append(line)
            continue
        if in_jobs and (match := JOB_HEADER.match(line)):
            current = match.group(1)
        if not in_jobs or current is None:
            out.append(line)
            continue
        if current not in wanted:
            continue
        if NEEDS_LINE.match(line):
            needs = load(text)["jobs"][current]["needs"]
            kept = [n for n in ([needs] if isinstance(needs, str) else needs) if n in wanted]
            if kept:
                out.append(f"    needs: [{', '.join(kept)}]\n")
            continue
        out.append(line)
    return "".join(out)


def uploads_run_folders(text: str, job: str) -> bool:
    return any(step.get("uses", "").startswith("actions/upload-artifact@")
               and str(step.get("with", {}).get("name", "")).startswith("run-")
               for step in load(text)["jobs"][job].get("steps", []))


@dataclass(frozen=True)
class LocalRun:
    act_dir: Path
    workflow: Path
    command: list[str]
    seeded: list[str]

    @property
    def artifacts(self) -> Path:
        return self.act_dir / "artifacts"


def prepare(jobs: list[str], act: str, python: str, act_dir: Path = DEFAULT_ACT_DIR,
            extra: list[str] | None = None, source: Path = ROOT) -> LocalRun:
    """The act command for ``jobs``, with the restricted workflow written and the artifact store made empty
    (then seeded with the fixture run folder when the report job has no drill job to feed it)."""
    text = WORKFLOW.read_text()
    act_dir = Path(act_dir).resolve()
    act_dir.mkdir(parents=True, exist_ok=True)
    workflow = act_dir / "nightly.yml"
    workflow.write_text(restricted(text, jobs))
    artifacts = act_dir / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir()
    seeded: list[str] = []
    if "report" in jobs and not any(uploads_run_folders(text, job) for job in jobs):
        shutil.copytree(FIXTURE_RUN, artifacts / FIXTURE_ARTIFACT / FIXTURE_RUN.name)
        seeded.append(FIXTURE_ARTIFACT)
    command = [act, EVENT, "-W", str(workflow), "-C", str(source), "--no-skip-checkout",
               "--action-cache-path", str(act_dir / "act-cache"), "--no-cache-server",
               "--env", f"BEAST_ACT_SOURCE={source}", "--env", f"BEAST_ACT_DIR={act_dir}",
               "--env", f"BEAST_ACT_ACTIONS={ACTIONS}", "--env", f"BEAST_ACT_PYTHON={python}"]
    for label in runner_labels(text):
        command += ["-P", f"{label}=-self-hosted"]
    for mapping in local_repositories(text):
        command += ["--local-repository", mapping]
    return LocalRun(act_dir, workflow, command + list(extra or []), seeded)


def run(jobs: list[str], act: str, python: str, act_dir: Path = DEFAULT_ACT_DIR, extra: list[str] | None = None,
        env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[LocalRun, int]:
    local = prepare(jobs, act, python, act_dir, extra)
    done = subprocess.run(local.command, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)
    return local, done.returncode


def main(argv: list[str]) -> int:
    """``python tests/act_local.py JOB... [act options]``, with the act beside this Python (nox -s nightly-local)."""
    args = list(argv)
    jobs = []
    while args and not args[0].startswith("-"):
        jobs.append(args.pop(0))
    if not jobs:
        print("name the jobs: nox -s nightly-local -- report (jobs: image drill freebsd report)", file=sys.stderr)
        return 2
    act = Path(sys.executable).parent / "act"
    if not act.is_file():
        act = Path(shutil.which("act") or "act")
    local = prepare(jobs, str(act), sys.executable, extra=args)
    if local.seeded:
        print(f"no job of this run uploads a run folder: the report job gets {FIXTURE_RUN.name} as artifact "
              f"{', '.join(local.seeded)}", flush=True)
    code = subprocess.run(local.command, cwd=ROOT).returncode
    print(f"artifacts in {local.artifacts}: {', '.join(sorted(p.name for p in local.artifacts.iterdir()))}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
