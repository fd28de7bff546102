"""`bst`: the BeaST Lab command line. Errors are one line on stderr and exit code 2, never a traceback.

Names, paths, commands and guest output are printed as text, never as Rich markup (``escape``): a host
called ``a[/x]`` must not crash the printer, and ``[sdb]`` in a guest's message must not vanish. Text read
from a run folder or a snapshot's manifest is also ``printable``: its control characters never reach the
terminal as commands."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from lab.cli_console import err, error_line, fail, out
from lab.cli_drill import drill
from lab.cli_image import image_app
from lab.errors import LabError
from lab.plan import Plan, plan_to_json
from lab.registry import require_stack
from lab.stacks import get_stack, lab_stack_name
from lab.terminal import printable
from lab.topology import Topology, load_topology

app = typer.Typer(
    name="bst",
    help="Reproduce and drill the BeaST + ZFS dual-controller storage system in virtual machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

TopologyOption = Annotated[
    Path | None, typer.Option("--topology", "-t",
                              help="Topology TOML file (default: $BEAST_TOPOLOGY, else the paper's lab).")
]


ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                      errno.EISDIR)
"""OS errors the user's machine causes (permissions, a read-only or full disk, a file where a directory
belongs): said in one line like a LabError, whichever verb met them."""


def main() -> None:
    """Entry point: LabError anywhere below, and a bad option or argument, becomes one line on stderr."""
    click_errors = sys.modules[typer.BadParameter.__module__]
    """click's exceptions, as the click typer runs on raises them (typer vendors its own from 0.26)."""
    try:
        code = app(standalone_mode=False)
    except getattr(click_errors, "NoArgsIsHelpError", ()) as usage:
        usage.show()
        sys.exit(usage.exit_code)
    except click_errors.UsageError as usage:
        command = usage.ctx.command_path if usage.ctx else "bst"
        error_line(f"{usage.format_message()} (see {command} --help)")
        sys.exit(2)
    except typer.Abort:
        error_line("aborted")
        sys.exit(130)
    except LabError as error:
        error_line(str(error))
        sys.exit(2)
    except OSError as error:
        if error.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f"{error.filename}: " if error.filename else ""
        error_line(f"{where}{error.strerror}; use a writable place you own and retry")
        sys.exit(2)
    if isinstance(code, int) and code:
        sys.exit(code)


def topology_path(path: Path | None) -> Path | None:
    """The --topology option, else the file BEAST_TOPOLOGY names, else None (the paper's lab)."""
    from lab.environment import env_topology_path

    try:
        return path if path is not None else env_topology_path()
    except LabError as error:
        fail(str(error))


def _topology(path: Path | None) -> Topology:
    try:
        return load_topology(topology_path(path))
    except LabError as error:
        fail(str(error))


def resolve_stack_name(topo: Topology, stack: str | None, provider_name: str | None = None) -> str:
    """The stack to use: the option, else the topology's, else the provider's natural one."""
    from lab.stacks import stack_name_for

    try:
        return require_stack(stack_name_for(topo.lab.stack, stack, provider_name))
    except LabError as error:
        fail(str(error))


@app.command()
def plan(
    stack: Annotated[str | None, typer.Option(help="freebsd (the paper's commands) or linux.")] = None,
    host: Annotated[str | None, typer.Option(help="Show one host only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    recovery: Annotated[str | None, typer.Option(help="Show the recovery plan for this failed controller.")] = None,
    wire: Annotated[bool, typer.Option("--wire", help="Print the exact strings sent over SSH, in order.")] = False,
    topology: TopologyOption = None,
) -> None:
    """Print the command plan a stack makes from the topology (nothing is run). Without --stack, the stack a
    running lab was brought up with, else the topology's."""
    topo = _topology(topology)
    stack_name = resolve_stack_name(topo, stack if stack is not None else recorded_stack(topo))
    try:
        recipe = get_stack(stack_name)
        if recovery is not None:
            if recovery not in {h.name for h in topo.controllers}:
                fail(f"--recovery {recovery} is not a controller; use one of "
                     f"{', '.join(h.name for h in topo.controllers)}")
            the_plan = recipe.recovery(topo, recovery)
        else:
            the_plan = recipe.provision(topo)
    except LabError as error:
        fail(str(error))
    if host is not None:
        if host not in the_plan:
            fail(f"--host {host} is not in the plan; use one of {', '.join(the_plan)}")
        the_plan = {host: the_plan[host]}
    if wire:
        from lab.wire import plan_strings

        try:
            sent = plan_strings(the_plan, recipe.wire)
        except LabError as error:
            fail(str(error))
        if as_json:
            sys.stdout.write(json.dumps(sent, indent=2) + "\n")
        else:
            sys.stdout.write("".join(f"{h}\t{line}\n" for h, lines in sent.items() for line in lines))
        return
    if as_json:
        sys.stdout.write(json.dumps(plan_to_json(the_plan), indent=2) + "\n")
        return
    _print_plan(the_plan, stack_name)


def _print_plan(the_plan: Plan, stack_name: str) -> None:
    for host, steps in the_plan.items():
        out.rule(f"[bold]{escape(host)}[/] · {escape(stack_name)} · {len(steps)} steps")
        for step in steps:
            out.print(f"[cyan]stage {step.stage}[/] [bold]{escape(step.name)}[/]", highlight=False)
            for path, content in step.files.items():
                out.print(Panel(Syntax(content.rstrip("\n"), "ini", word_wrap=True), title=escape(path),
                                title_align="left", expand=False))
            for command in step.commands:
                out.print(f"  [green]$[/] {escape(command)}", highlight=False, soft_wrap=True)
            if step.check:
                out.print(f"  [dim]done when: {escape(step.check)}[/]", highlight=False, soft_wrap=True)


ProviderOption = Annotated[str | None, typer.Option("--provider", "-p", help="auto, qemu or virtualbox.")]
HostArgument = Annotated[str, typer.Argument(help="A host of the topology, e.g. ctrl-a.")]


StackOption = Annotated[str | None, typer.Option(
    help="freebsd or linux: the guests' stack (default: the one the lab was brought up with, else the "
         "topology's).")]


def recorded_stack(topo) -> str | None:
    """The stack the lab of this topology was brought up with, when a lab is there and recorded one."""
    from lab.providers import create_provider, select_provider

    try:
        name, _ = select_provider(topo, None)
        return create_provider(topo, name).recorded_stack()
    except LabError:
        return None


def _provider(topology: Path | None, provider: str | None, stack: str | None = None):
    """The lab's provider object, its name and why it was chosen; its ``stack_name`` is the option, else the
    stack recorded at `bst up`, else the topology's, and its hardware that stack's. An option that is not
    the recorded stack is refused: the lab's VMs were built for the recorded one."""
    from lab.providers import create_provider, select_provider

    topo = _topology(topology)
    name, reason = select_provider(topo, provider)
    lab = create_provider(topo, name)
    try:
        stack_name = lab_stack_name(topo.lab.stack, stack, name, lab.recorded_stack(), topo.lab.name)
        lab.hardware = get_stack(stack_name).hardware
    except LabError as err:
        fail(str(err))
    lab.stack_name = stack_name
    return lab, name, reason


@app.command()
def up(provider: ProviderOption = None, topology: TopologyOption = None, stack: StackOption = None) -> None:
    """Create and boot the lab (guest image built on first use); a no-op when it is up."""
    from rich.progress import Progress

    lab, name, reason = _provider(topology, provider, stack)
    with Progress(console=err, transient=False) as progress:
        lab.up(progress=progress)
    _print_status(lab, name, reason)


@app.command()
def down(provider: ProviderOption = None, topology: TopologyOption = None, stack: StackOption = None) -> None:
    """Stop and remove every VM, switch and disk of the lab."""
    lab, _, _ = _provider(topology, provider, stack)
    lab_dir = getattr(lab, "lab_dir", None)
    existed = lab_dir is None or Path(lab_dir).exists()
    lab.down()
    out.print("lab removed" if existed else f"no lab {escape(lab.topology.lab.name)} at {escape(str(lab_dir))}; "
              "nothing to remove", highlight=False)


@app.command()
def status(provider: ProviderOption = None, topology: TopologyOption = None, stack: StackOption = None) -> None:
    """Each host's state, pid, SSH port and accelerator, and which provider and why."""
    lab, name, reason = _provider(topology, provider, stack)
    _print_status(lab, name, reason)


def _print_status(lab, name: str, reason: str) -> None:
    table = Table("host", "state", "pid", "ssh port", "accel", "detail", title=f"lab · provider {escape(name)}")
    for host in lab.status():
        table.add_row(escape(host.name), str(host.state), str(host.pid or "-"), str(host.ssh_port or "-"),
                      escape(host.accel or "-"), escape(host.detail))
    out.print(table)
    out.print(f"[dim]{escape(reason)}[/]", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(
    host: HostArgument,
    command: Annotated[list[str] | None, typer.Argument(help="Command to run; a shell when omitted.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before a command is given up.")] = 300,
    provider: ProviderOption = None,
    topology: TopologyOption = None,
    stack: StackOption = None,
) -> None:
    """Run a command on a host (or open a shell) with the lab's key. A command is sh, on every stack: it goes
    through the stack's wire, as the drill's commands do (root's login shell on FreeBSD is csh)."""
    import os

    from lab import remote

    lab, _, _ = _provider(topology, provider, stack)
    lab.check_host(host)
    target = lab.ssh_target(host)
    if not command:
        argv = remote.ssh_command(target)
        os.execvp(argv[0], argv)
    from lab.executor import FabricRunner

    recipe = get_stack(lab.stack_name)
    runner = FabricRunner(remote.connect(target, timeout=30), wire=recipe.wire, host=host)
    result = runner.run(" ".join(command), timeout)
    to_terminal(sys.stdout, result.stdout)
    to_terminal(sys.stderr, result.stderr)
    if result.exit_code is None:
        raise LabError(remote.describe_failure(result))
    raise typer.Exit(result.exit_code)


@app.command()
def console(
    host: HostArgument,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end (1 or more).",
                                       min=1)] = 40,
    provider: ProviderOption = None,
    topology: TopologyOption = None,
) -> None:
    """The tail of a host's serial console log."""
    lab, _, _ = _provider(topology, provider)
    lab.check_host(host)
    path = lab.console_log(host)
    if not path.exists():
        fail(f"{host} has no console log yet at {path}; boot the lab with bst up")
    to_terminal(sys.stdout, "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:]))


def to_terminal(stream, text: str) -> None:
    """A guest's output as it is when piped (a file or a program reads it), but with its control characters
    written out when a terminal shows it: a guest must not move the cursor or rewrite what the user sees."""
    isatty = getattr(stream, "isatty", None)
    stream.write(printable(text) if callable(isatty) and isatty() else text)


def _on_host(host: str, provider: str | None, topology: Path | None, action: str, done: str,
             stack: str | None = None) -> None:
    """Run one provider power action on one host and say so; cutting the power of a host that was never
    created is an error, not "powered off"."""
    from lab.providers import HostState

    lab, _, _ = _provider(topology, provider, stack)
    lab.check_host(host)
    if action == "power_off":
        state = next(h.state for h in lab.status() if h.name == host)
        if state == HostState.ABSENT:
            fail(f"{host} does not exist in lab {lab.topology.lab.name} (never created, or removed by bst down); "
                 "boot the lab with bst up")
        if state == HostState.STOPPED:
            done = "was already off"
    getattr(lab, action)(host)
    out.print(f"{escape(host)} {done}", highlight=False)


@app.command()
def kill(host: HostArgument, provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """Cut a host's power at once (the paper's "kick-off ctrl-a")."""
    _on_host(host, provider, topology, "power_off", "powered off")


@app.command()
def start(host: HostArgument, provider: ProviderOption = None, topology: TopologyOption = None,
          stack: StackOption = None) -> None:
    """Boot a powered-off host and wait for its SSH."""
    _on_host(host, provider, topology, "start", "is up", stack)


@app.command()
def pause(host: HostArgument, provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """Freeze a host's CPUs (disks and NICs stay attached)."""
    _on_host(host, provider, topology, "pause", "paused")


@app.command()
def resume(host: HostArgument, provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """Continue a paused host."""
    _on_host(host, provider, topology, "resume", "resumed")


snapshot_app = typer.Typer(
    help="Save and restore the whole running lab (every VM's RAM and devices, every disk) in one go.",
    no_args_is_help=True,
)
app.add_typer(snapshot_app, name="snapshot")
SnapshotName = Annotated[str, typer.Argument(help="Snapshot name: letters, digits, '.', '_', '-'.")]


def _snapshot_provider(name: str | None, topology: Path | None, provider: str | None):
    from lab.providers.snapshot import check_name

    if name is not None:
        check_name(name)
    lab, _, _ = _provider(topology, provider)
    return lab


def _set_guest_clocks(lab) -> str:
    """Set guest clocks left behind by a snapshot save or restore; what to add to the message."""
    from lab.guests import sync_clocks

    stack = get_stack(lab.stack_name)
    found = sync_clocks(lab, stack, lab.host_names())
    clocks = ", ".join(f"{h} {s.behind_s:.0f} s" for h, s in found.items() if s is not None and s.set)
    return f"; guest clocks were behind by {clocks} and were set to the host's time" if clocks else ""


@snapshot_app.command("save")
def snapshot_save(
    name: SnapshotName,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a snapshot of that name.")] = False,
    provider: ProviderOption = None,
    topology: TopologyOption = None,
) -> None:
    """Pause every VM together, save their RAM, devices and disks, continue them (save it provisioned)."""
    from rich.progress import Progress

    from lab.providers.snapshot import human_size

    lab = _snapshot_provider(name, topology, provider)
    with Progress(console=err, transient=True) as progress:
        manifest = lab.snapshot_save(name, progress=progress, replace=replace)
    t = manifest.timings
    out.print(f"snapshot {name} saved: {human_size(manifest.size_bytes)} in {t.get('total_s', 0):.1f} s; "
              f"the lab was paused {t.get('paused_s', 0):.1f} s" + _set_guest_clocks(lab), highlight=False)


@snapshot_app.command("restore")
def snapshot_restore(name: SnapshotName, provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """Put the lab back as it was when NAME was saved (its VMs restart from their saved RAM)."""
    from rich.progress import Progress

    lab = _snapshot_provider(name, topology, provider)
    with Progress(console=err, transient=True) as progress:
        timings = lab.snapshot_restore(name, progress=progress)
    out.print(f"snapshot {name} restored in {timings['total_s']:.1f} s" + _set_guest_clocks(lab), highlight=False)


@snapshot_app.command("list")
def snapshot_list(provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """The lab's snapshots: name, when, size, topology and guest image."""
    from lab.providers.snapshot import human_size

    lab = _snapshot_provider(None, topology, provider)
    found = lab.snapshots()
    if not found:
        out.print(f"no snapshots in lab {lab.topology.lab.name}; save one with: bst snapshot save NAME",
                  markup=False, highlight=False)
        return
    table = Table("name", "created (UTC)", "size", "topology", "image",
                  title=f"snapshots · lab {escape(lab.topology.lab.name)}")
    for manifest in found:
        table.add_row(*(escape(printable(text)) for text in (
            manifest.name, manifest.created_utc, human_size(manifest.size_bytes),
            f"{Path(manifest.topology_source).name} {manifest.topology_hash[:8]}",
            f"{manifest.image_name} {manifest.image_hash[:8]}")))
    out.print(table)


@snapshot_app.command("delete")
def snapshot_delete(name: SnapshotName, provider: ProviderOption = None, topology: TopologyOption = None) -> None:
    """Delete a snapshot."""
    lab = _snapshot_provider(name, topology, provider)
    lab.snapshot_delete(name)
    out.print(f"snapshot {name} deleted")


app.add_typer(image_app, name="image")


@app.command()
def report(
    run: Annotated[Path | None, typer.Argument(help="A run folder (default: artifacts/latest).")] = None,
    matrix: Annotated[bool, typer.Option(help="The faults × modes matrix of every run under artifacts/.")] = False,
) -> None:
    """Render a stored run's report.html again and print its summary."""
    from lab.report import render_report, render_summary

    if matrix:
        from lab.report.matrix import matrix_table, render_matrix

        root = run or Path("artifacts")
        folders = [f for f in sorted(root.glob("*")) if f.is_dir() and not f.is_symlink()] if root.is_dir() else []
        if not folders:
            fail(f"no run with a results.json under {root}; run a drill first (bst drill)")
        path, cells = render_matrix(folders, root)
        out.print(matrix_table(cells))
        out.print(printable(f"written to {path}"), markup=False, highlight=False)
        return
    folder = run or Path("artifacts") / "latest"
    render_report(folder)
    render_summary(folder, out)


app.command(name="drill")(drill)


@app.command()
def doctor(
    provider: Annotated[str, typer.Option(help="auto, qemu or virtualbox (auto: as bst up would choose).")] = "auto",
    topology: TopologyOption = None,
) -> None:
    """Say what decides whether the lab will work here and how long it takes: missing host tools (and the
    command that installs them), root, the accelerator, free disk and memory, the guest image cache, the
    expected times. Exit 1 when something must change first."""
    from lab.host_readiness import host_facts, readiness
    from lab.providers import doctor as missing_tools
    from lab.providers import select_provider

    provider, reason = select_provider(_topology(topology), provider)
    out.print(f"[dim]{escape(reason)}[/]", highlight=False)
    missing = missing_tools(provider)
    if not missing:
        out.print(f"[green]every host tool the {escape(provider)} provider needs is installed[/]")
    else:
        table = Table("program", "package", "why", title=f"missing for the {provider} provider")
        for tool in missing:
            table.add_row(tool.program, tool.package, tool.why)
        out.print(table)
        packages = " ".join(dict.fromkeys(t.package for t in missing))
        out.print(f"install them with: [bold]apt-get install -y {packages}[/]")
    findings = readiness(host_facts(Path(".lab"))) if provider == "qemu" else []
    if findings:
        table = Table("check", "here", "what it means", title="this host")
        for finding in findings:
            mark = "" if finding.ok else "[red]✗[/] "
            table.add_row(escape(finding.check), mark + escape(finding.here), escape(finding.meaning))
        out.print(table)
    if missing or not all(f.ok for f in findings):
        raise typer.Exit(1)


if __name__ == "__main__":
    main()
