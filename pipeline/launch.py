"""Multi-process launcher of the train stage: torchrun, ending on one line that names the cause.

    python -m pipeline.launch --standalone --nnodes 1 --nproc-per-node 2 -m pipeline.stages.train --params ...

Arguments are torchrun's (``python -m torch.distributed.run``). When a rank fails, torchrun stops
its peers (each prints ``error: terminated``) and then prints a ``ChildFailedError`` traceback. This
launcher runs torchrun in-process with its elastic logging quiet, and instead prints the error line
of the rank that failed first (each rank's ``run_cli`` leaves it in a folder this launcher names in
``GANBENCH_RANK_ERRORS``), or, for a rank that died without one (killed), which rank and signal;
it exits with that rank's status (128 + N for signal N). SIGTERM / SIGINT to the launcher stop the
ranks, which print their own line, and it exits 143 / 130 without a traceback.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from pipeline.errors import RANK_ERRORS, say


def cause(err: ChildFailedError, folder: Path) -> tuple[int, str]:
    """The exit status and error line of the rank that failed first."""
    rank, failure = err.get_first_failure()
    code = 128 - failure.exitcode if failure.exitcode < 0 else failure.exitcode
    line = folder / str(rank)
    if line.exists() and line.read_text().strip():
        return code, line.read_text().strip()
    how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with status {failure.exitcode}"
    return code, f"error: training rank {rank} {how}; see the rule's log, then rerun to resume"


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="ganbench-ranks-") as folder:
        os.environ[RANK_ERRORS] = folder
        try:
            torchrun.main(argv)
        except ChildFailedError as err:
            code, line = cause(err, Path(folder))
            say(line)
            sys.exit(code or 1)
        except SignalException as err:
            sys.exit(128 + int(err.sigval))
        except KeyboardInterrupt:
            sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    main()
