"""docs/cli.md, generated from the code so the reference cannot drift from it: every `bst` command and
option (from the Typer app), `python -m lab.bench --help` and the nox sessions' docstrings (read from
noxfile.py without importing nox). `python -m lab.docs_cli` rewrites the file; `--check` fails when the
committed one differs (tests/test_docs_cli.py runs the same comparison)."""

from __future__ import annotations

import argparse
import ast
import sys
import typing
from enum import Enum
from functools import partial
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
NOXFILE = ROOT / "noxfile.py"
HELP_WIDTH = 100
"""argparse's help is wrapped at this width, never at the terminal's, so the file is the same everywhere."""

HEADER = """# CLI reference

Generated from the code by `python -m lab.docs_cli`; do not edit by hand (`tests/test_docs_cli.py` fails
when this file and the code disagree). Common commands by example: [commands.md](commands.md).
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_names(param) -> str:
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    return ", ".join(f"`{n}`" for n in names)


def _value_type(param) -> tuple[str, list[str], object, object]:
    """(type name, choices, min, max) of an option, from click's ``type`` or, on a typer that has its own
    parameters (0.26 and later), from the annotation: the same words either way."""
    kind = getattr(param, "type", None)
    if kind is not None:
        name = {"integer range": "integer", "float range": "float"}.get(kind.name, kind.name)
        return name, list(getattr(kind, "choices", None) or []), getattr(kind, "min", None), getattr(kind, "max", None)
    annotation = param.type_descriptor.annotation
    inner = [a for a in typing.get_args(annotation) if a is not type(None)]
    annotation = inner[0] if inner else annotation
    choices = [m.value for m in annotation] if isinstance(annotation, type) and issubclass(annotation, Enum) else []
    names = {int: "integer", float: "float", str: "text", Path: "path", bool: "boolean"}
    return "choice" if choices else names.get(annotation, "text"), choices, param.min, param.max


def _option_value(param) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    name, choices, low, high = _value_type(param)
    if choices:
        return " \\| ".join(str(c) for c in choices)
    bounds = [f"≥ {low}"] * (low is not None) + [f"≤ {high}"] * (high is not None)
    return name.upper() + (f" ({', '.join(bounds)})" if bounds else "") + (" (repeatable)" if param.multiple else "")


def _default(param) -> str:
    default = param.default
    if default is None or default is False or callable(default) or type(default).__name__ == "Sentinel":
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(str(d) for d in default) if default else ""
    return f"`{default}`"


def _usage(path: str, command) -> str:
    words = [path, "[OPTIONS]"]
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        name = param.name.upper() + ("..." if param.nargs == -1 else "")
        words.append(name if param.required else f"[{name}]")
    return " ".join(words)


def _command_section(path: str, command) -> list[str]:
    lines = [f"### `{path}`", "", _cell(command.help or ""), "", "```", _usage(path, command), "```", ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    if arguments:
        lines += ["| argument | help |", "|---|---|"]
        lines += [f"| `{p.name.upper()}` | {_cell(getattr(p, 'help', '') or '')} |" for p in arguments]
        lines.append("")
    if options:
        lines += ["| option | value | default | help |", "|---|---|---|---|"]
        lines += [f"| {_option_names(p)} | {_option_value(p)} | {_default(p)} | {_cell(p.help or '')} |"
                  for p in options]
        lines.append("")
    return lines


def bst_commands(command=None, path: str = "bst"):
    """(path, click command) for every runnable command of the Typer app, groups before their commands."""
    from lab.cli import app

    command = command or typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name in sorted(subcommands):
        yield from bst_commands(subcommands[name], f"{path} {name}")


def bench_help() -> str:
    from lab.bench import bench_parser

    parser = bench_parser()
    parser.formatter_class = partial(argparse.HelpFormatter, width=HELP_WIDTH)
    return parser.format_help()


def nox_sessions(noxfile: Path = NOXFILE) -> list[tuple[str, str]]:
    """(session name, docstring) for every ``@nox.session`` of noxfile.py, in file order."""
    sessions = []
    for node in ast.parse(noxfile.read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if ast.unparse(target) != "nox.session":
                continue
            name = next((k.value.value for k in (call.keywords if call else []) if k.arg == "name"), node.name)
            sessions.append((name, ast.get_docstring(node) or ""))
    return sessions


def render() -> str:
    from lab.cli import app

    top = typer.main.get_command(app)
    lines = [HEADER, "## bst", "", _cell(top.help or ""), ""]
    for path, command in bst_commands():
        lines += _command_section(path, command)
    lines += ["## python -m lab.bench", "", "```", bench_help().rstrip("\n"), "```", ""]
    lines += ["## nox sessions", "", "| session | what it does |", "|---|---|"]
    lines += [f"| `nox -s {name}` | {_cell(doc)} |" for name, doc in nox_sessions()]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.docs_cli", description="Write docs/cli.md from the code.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when docs/cli.md differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not CLI_MD.is_file() or CLI_MD.read_text() != text:
            print(f"{CLI_MD} differs from the code; regenerate it with: python -m lab.docs_cli", file=sys.stderr)
            return 1
        return 0
    CLI_MD.write_text(text)
    print(f"written {CLI_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
