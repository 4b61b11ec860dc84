"""One clear line instead of a traceback for command-line errors."""

from __future__ import annotations

import os
import re
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
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 1


# One of our errors raised inside a tf.data function reaches the CLI
# wrapped in TensorFlow's "Graph execution error" with its traceback.
_WRAPPED = re.compile(
    r"(BadImageError): (Cannot decode image .*?)(?: Traceback|$)"
)


def one_line(error: BaseException) -> str:
    """`"Type: message"` on one line; an error of ours wrapped by a
    TensorFlow op error is unwrapped."""
    message = str(error).strip().splitlines()
    text = " ".join(line.strip() for line in message) or repr(error)
    wrapped = _WRAPPED.search(text)
    if wrapped:
        return f"{wrapped.group(1)}: {wrapped.group(2)}"
    return f"{type(error).__name__}: {text}"
