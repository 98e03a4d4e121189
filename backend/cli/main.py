"""Entry point of the `irg-motion` command. Each command lives in its own module under backend/cli/
and adds itself through `register(subparsers)`; `main` maps the errors users can fix to one readable line."""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from rich.console import Console
from rich.markup import escape

# Command modules, in the order `irg-motion --help` lists them.
COMMAND_MODULES = [
    "backend.cli.motion_commands",
    "backend.cli.body_commands",
    "backend.cli.bvh_command",
    "backend.cli.serve_commands",
    "backend.cli.retarget_command",
    "backend.cli.generate_command",
    "backend.cli.preview_command",
    "backend.cli.fetch_commands",
    "backend.cli.bench_commands",
]


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def _plugin_modules() -> list[str]:
    """Command modules other packages (training/) declare under the `irg_motion.commands` entry point."""
    return [ep.value for ep in entry_points(group="irg_motion.commands")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irg-motion", description="Text-to-motion for animators (IRG-MotionLLM).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES + _plugin_modules():
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not exc.name or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # a real missing dependency inside the module: let it surface
            continue  # a declared plugin that is not installed in this checkout
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
