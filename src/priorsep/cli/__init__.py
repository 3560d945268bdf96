"""The `priorsep` command line: parses options, calls the core, reports on stderr.

Only this package prints or chooses exit codes. The core raises `PriorsepError` subclasses;
each becomes one line on stderr and the exit code of its class (see docs/cli.md). `app` holds
the shared options and error handling and imports no command; each other module imports it and
registers its commands on it in the order `priorsep --help` lists them;
`root` adds the options of `priorsep` itself.
"""

# isort: off
from priorsep.cli.app import app, main
from priorsep.cli import separating, training, finetuning, posterior  # noqa: F401
from priorsep.cli import models, evaluating, rendering, root  # noqa: F401
# isort: on

__all__ = ["app", "main"]
