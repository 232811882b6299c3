"""`taskforge` command line: one module per command group, all registered on `app`."""

import signal
import sys

# Importing the command modules takes a second or more on a busy machine: a Ctrl-C meanwhile exits
# quietly with 130, as it would a moment later, instead of printing an import traceback.
_handler = signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))

# Importing a command module registers its commands on `app`.
from taskforge.cli import check as _check  # noqa: E402,F401
from taskforge.cli import data as _data  # noqa: E402,F401
from taskforge.cli import demo as _demo  # noqa: E402,F401
from taskforge.cli import export as _export  # noqa: E402,F401
from taskforge.cli import families as _families  # noqa: E402,F401
from taskforge.cli import integrations as _integrations  # noqa: E402,F401
from taskforge.cli import plot as _plot  # noqa: E402,F401
from taskforge.cli import sandbox as _sandbox  # noqa: E402,F401
from taskforge.cli import train as _train  # noqa: E402,F401
from taskforge.cli.app import app  # noqa: E402

signal.signal(signal.SIGINT, _handler)


def main() -> None:
    app()


__all__ = ["app", "main"]
