"""Command line: ``python -m nbweights export run.nbw --tensorboard logdir``.

Exports a saved run (``w.save("run.nbw")``) as TensorBoard events; exit status 2 with a message
naming the problem when the file is missing, is not a history, or TensorBoard is not installed.
"""
from __future__ import annotations

import argparse
import os
import sys

from .history.tensorboard import export_tensorboard


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m nbweights", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="command")
    export = commands.add_parser("export", help="export a saved run (.nbw) to another tool's format",
                                 description="Export a saved run (.nbw) to another tool's format.")
    export.add_argument("history", help="a .nbw file written by Watcher.save()")
    export.add_argument("--tensorboard", metavar="LOGDIR", required=True,
                        help="write TensorBoard event files into LOGDIR (created if needed)")
    return top


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if not os.path.isfile(arguments.history):
        print(f"nbweights export: no such file: {arguments.history}", file=sys.stderr)
        return 2
    try:
        done = export_tensorboard(arguments.history, arguments.tensorboard)
    except (ValueError, ImportError, OSError) as error:
        print(f"nbweights export: {error}", file=sys.stderr)
        return 2
    print(f"wrote {done.histograms} histograms and {done.scalars} scalars to {done.path}\n"
          f"view them with: tensorboard --logdir {arguments.tensorboard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
