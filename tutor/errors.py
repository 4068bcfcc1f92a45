"""The one base of the project's own errors: a failure the user can act on, with a message that
says what and where, and the exit code `socratic` ends with when it reaches the command line.

`tutor.cli` catches `UserError` once and prints `socratic: error: MESSAGE` (no traceback). Every
error class of the project derives from it, so a command needs no list of its own; the exit code
is the class's (2: bad input or settings, as argparse; 1: something failed while running).

    class EngineError(UserError, RuntimeError):
        exit_code = 1
"""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on; `exit_code` is what `socratic` exits with (default 2)."""

    exit_code: int = 2
