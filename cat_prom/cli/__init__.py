"""``cat-prom``: the command line for researchers and operators.

One command whose subcommands come from two places:

* the engine's command modules, :data:`COMMAND_MODULES` (``cat_prom.cli.bank``,
  ``score``, ``calibrate``, ``link``, ``simulate``). Each has
  ``register(subparsers)``, which adds its parser(s) and sets ``func``, and
  imports numpy and the engine only inside the functions that run a command,
  so that building the parser is fast;
* commands other packages register through the entry-point group
  ``cat_prom.commands`` (:data:`ENTRY_POINT_GROUP`): each entry point is named
  after the command it adds and points at a ``register(subparsers)``
  function. The service registers ``serve`` and ``keys`` this way in
  ``pyproject.toml``; the engine never imports it. A plugin's module is
  imported only when one of its commands runs. For ``cat-prom --help`` its
  one-line descriptions are read, without importing it, from a dict literal
  ``COMMANDS = {"name": "help", ...}`` in that module (the way setuptools reads
  ``attr:`` versions); without one, the module is imported.

Every :class:`~cat_prom.errors.CatPromError` (and an unreadable file) ends the
program with ``cat-prom: error: <message>`` on stderr and exit status 2, never a
traceback. To add an engine command, write a module with ``register`` and add
it to :data:`COMMAND_MODULES`; raise ``CatPromError`` subclasses for user errors.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from importlib import import_module
from typing import Sequence

from .. import __version__
from ..errors import CatPromError

__all__ = ["main", "build_parser", "COMMAND_MODULES", "ENTRY_POINT_GROUP", "PROG"]

PROG = "cat-prom"
EXIT_USER_ERROR = 2
#: The engine's command modules, in the order ``--help`` lists their commands.
COMMAND_MODULES = ("bank", "score", "calibrate", "link", "simulate")
#: Entry-point group through which other packages add commands.
ENTRY_POINT_GROUP = "cat_prom.commands"


# ------------------------------------------------------------------ plugins
def _plugins() -> list:
    """Entry points of :data:`ENTRY_POINT_GROUP` (command name -> register function)."""
    from importlib.metadata import entry_points
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _static_help(ep) -> str | None:
    """The plugin's one-line help for ``ep.name`` from its module's ``COMMANDS`` literal, without importing it."""
    from importlib.util import find_spec
    top, _, rest = ep.module.partition(".")
    try:
        spec = find_spec(top)  # finds a top-level package without running it
        if spec is None:
            return None
        if not rest:
            path = spec.origin
        elif spec.submodule_search_locations:
            path = os.path.join(next(iter(spec.submodule_search_locations)), *rest.split(".")) + ".py"
        else:
            return None
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value.get(ep.name) if isinstance(value, dict) else None
    return None


def _load_plugin(ep, subparsers) -> None:
    try:
        register = ep.load()
    except Exception as e:  # a missing optional dependency, a broken install
        raise CatPromError(f"the command {ep.name!r} ({ep.value}) is not available: {type(e).__name__}: {e}. "
                           f"Install cat-prom with its service dependencies (pip install -e .)") from None
    register(subparsers)


def _add_placeholder(subparsers, ep) -> None:
    """A plugin command listed in ``--help`` without importing its module."""
    text = _static_help(ep)
    if text is None:  # no static help: import the plugin to ask it (skipped if it cannot be imported)
        try:
            _load_plugin(ep, subparsers)
        except CatPromError:
            pass
        return
    sp = subparsers.add_parser(ep.name, help=text, add_help=False)
    sp.add_argument("rest", nargs=argparse.REMAINDER)


# ------------------------------------------------------------------ parser
def _command_listing(sub) -> str:
    """Every command and subcommand with its one-line description (the epilog of ``--help``)."""
    lines = ["commands:"]
    for choice in sub._choices_actions:  # argparse keeps each subcommand's help here
        lines.append(f"  {choice.dest:<18}{choice.help or ''}")
        parser = sub.choices[choice.dest]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for nested in action._choices_actions:
                    lines.append(f"  {choice.dest + ' ' + nested.dest:<18}{nested.help or ''}")
    lines += ["", f"`{PROG} COMMAND --help` shows a command's options. In a checkout, {PROG} is installed in",
              ".venv/bin: `make shell` (or `. .venv/bin/activate`) puts it on PATH."]
    return "\n".join(lines)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``cat-prom`` parser.

    Parameters
    ----------
    command : str, optional
        The command about to run: if a plugin provides it, that plugin is imported and registers
        its real parser; other plugin commands get light placeholders (listed, not importable
        until run).
    """
    parser = argparse.ArgumentParser(
        prog=PROG, usage="%(prog)s [-h] [--version] COMMAND ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Computerised adaptive testing for patient-reported outcomes: item banks, scoring, "
                    "calibration, simulation and the CAT service.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)  # listed in the epilog
    sub.required = True
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").register(sub)
    engine = set(sub.choices)
    plugins = [ep for ep in _plugins() if ep.name not in engine]
    for ep in plugins:
        if ep.name == command:
            _load_plugin(ep, sub)
    for ep in plugins:
        if ep.name not in sub.choices:
            _add_placeholder(sub, ep)
    parser.epilog = _command_listing(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first non-option word)."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cat-prom``; returns the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_command_of(argv)).parse_args(argv)
        return int(args.func(args) or 0)
    except CatPromError as e:
        print(f"{PROG}: error: {e.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # a file named on the command line that cannot be read or written
        if isinstance(e, BrokenPipeError):
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            return 0
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: cannot access{where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
