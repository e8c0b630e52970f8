"""One error type for every expected failure, the entry-point wrapper that reports it, and the
command-line parser that reports a usage mistake the same way (one line; exit status 2, as argparse).

A stage raises :class:`PipelineError` with a message that names the cause and what to do; the
wrapper prints it as one line on stderr and exits with status 1. Operating-system errors (a full
disk, a permission, a missing folder) are reported the same way, naming the file. SIGTERM is
handled like SIGINT: the stage unwinds (temporary files are removed, no output is half written),
prints one line and exits 143 (130 for SIGINT). A signal's exception raised while Python runs a
finaliser is swallowed by the interpreter, so the signal is also recorded and long loops call
:func:`check_stop`, which raises it again. Other exceptions keep their traceback: they are bugs,
not bad input.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
from typing import Callable, NoReturn


class PipelineError(Exception):
    """Bad input or an unmet precondition, reported to the user as one line."""


def fail(message: str) -> NoReturn:
    raise PipelineError(message)


class CommandLine(argparse.ArgumentParser):
    """argparse whose usage mistakes (an unknown option, a missing or malformed value) are reported
    like any other bad input: one line that names the mistake and points to ``--help``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        say(f"error: {self.prog}: {one_line(message)}; see {self.prog} --help")
        sys.exit(2)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs as for KeyboardInterrupt."""


_received: list[int] = []  # signals received by this process's run_cli
RANK_ERRORS = "GANBENCH_RANK_ERRORS"  # env: the folder where each rank leaves its error line (pipeline/launch.py)


def _stop(signum: int, frame: object) -> None:
    _received.append(signum)
    check_stop()


def check_stop() -> None:
    """Raise the exception of a signal received earlier (a no-op when none was)."""
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()


def say(line: str) -> None:
    """Write one line to stderr in a single call, so a signal handled mid-print cannot leave it
    without its newline (``print`` writes the text and the newline separately)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main``; report expected failures as one ``error: ...`` line and a non-zero exit."""
    _received.clear()
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        main(argv)
        check_stop()
    except PipelineError as err:
        _exit(f"error: {one_line(err)}", 1)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        _exit(f"error: {where}{one_line(err.strerror or err)}", 1)
    except KeyboardInterrupt:
        _exit("error: interrupted (SIGINT); rerun to resume", 130)
    except Terminated:
        _exit("error: terminated (SIGTERM); rerun to resume", 143)
    finally:
        _received.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit(line: str, code: int) -> NoReturn:
    """Print the error line and exit; a rank of a multi-process run (pipeline/launch.py) also leaves the
    line for its launcher, which prints the first failing rank's line last."""
    say(line)
    folder, rank = os.environ.get(RANK_ERRORS), os.environ.get("RANK")
    if folder and rank is not None and os.path.isdir(folder):
        with open(os.path.join(folder, rank), "w") as fh:
            fh.write(line + "\n")
    sys.exit(code)


def die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when this process's parent dies (Linux's PR_SET_PDEATHSIG), and exit at
    once if ``parent`` is gone already: decode workers and torchrun's ranks do not outlive a killed stage."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
