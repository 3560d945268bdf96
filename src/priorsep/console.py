"""The `priorsep` console script: the command line is imported inside a Ctrl-C guard, so an
interrupt while torch is still loading ends with one line and exit code 130, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from priorsep.cli import main as run_command_line

        run_command_line()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
