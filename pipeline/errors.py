"""One error type for every expected failure, and the entry-point wrapper that reports it.

A stage raises :class:`PipelineError` with a message that names the cause and what to do; the
wrapper prints it as one line on stderr and exits with status 1. Unexpected exceptions keep their
traceback: they are bugs, not bad input.
"""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class PipelineError(Exception):
    """Bad input or an unmet precondition, reported to the user as one line."""


def fail(message: str) -> NoReturn:
    raise PipelineError(message)


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main`` and turn :class:`PipelineError` into ``error: ...`` and exit 1."""
    try:
        main(argv)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
