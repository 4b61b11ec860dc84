"""One clear line instead of a traceback for command-line errors."""

from __future__ import annotations

import os
import sys
import traceback

TRACEBACK_ENV = "KERAS_DLPA_TRACEBACK"


class UsageError(ValueError):
    """A bad command line (exit code 2)."""


def run_command(func, *args, prog: str = "keras-dlpa") -> int:
    """Runs `func(*args)`; prints errors as one line on stderr.

    Exit codes: `func`'s (0 if it returns None), 2 for a `UsageError`, 1
    for any other error, 130 on Ctrl-C. Set `KERAS_DLPA_TRACEBACK=1` (or
    pass `--traceback` to the command) to see the full traceback too.
    """
    try:
        return int(func(*args) or 0)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's last line
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            traceback.print_exc()
        message = str(error).strip().splitlines()
        text = " ".join(line.strip() for line in message) or repr(error)
        print(f"{prog}: error: {type(error).__name__}: {text}", file=sys.stderr)
        return 1
