"""One-line errors for the commands a person types: `error: <what, where, what to do>` on stderr, exit status 2.

A user's mistake (bad data, contradicting flags, a missing file, an unreachable Hub id) is one line; anything else is
a bug and keeps its traceback, as does a user error under `--debug` or `QA_TRACEBACK=1`. Under accelerate/torchrun
every process exits with the status and only the main process prints, so the launcher fails with one message.
"""

import os
import sys
from collections.abc import Callable

USER_ERROR_STATUS = 2  # the status argparse uses for a bad command line
TRACEBACK_VARIABLE = "QA_TRACEBACK"


class UserError(ValueError):
    """A mistake in what the user gave; the message names the file, record, flag or id, and what to do."""


def run_command(command: Callable[[], object], user_errors: tuple[type[BaseException], ...] = (UserError,),
                debug: bool = False) -> int:
    """Return the exit status of `command()`: 0, or 2 after printing a user error as one line on stderr; other
    exceptions, and user errors under `debug` or QA_TRACEBACK, propagate with their traceback."""
    try:
        command()
    except user_errors as error:
        if debug or traceback_requested():
            raise
        if is_main_process():
            print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
        return USER_ERROR_STATUS
    return 0


def one_line(error: BaseException) -> str:
    """Return the error's message on a single line (library messages often span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def traceback_requested() -> bool:
    """True when QA_TRACEBACK is set to anything but an empty string, 0 or false."""
    return os.environ.get(TRACEBACK_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def is_main_process() -> bool:
    """True outside distributed launches, and on the global rank 0 under accelerate/torchrun (which set RANK)."""
    return os.environ.get("RANK", "0") == "0"
