"""pipeline/io.py: atomic outputs, written together or not at all."""
from __future__ import annotations

import errno
import os
import signal

import pytest

from pipeline import io
from pipeline.errors import PipelineError
from pipeline.io import all_or_nothing, atomic_path, save_json


def listing(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<folder>" for p in sorted(folder.iterdir())}


def test_a_folder_in_an_outputs_place_stops_the_block_before_any_rename(tmp_path):
    save_json(tmp_path / "a.json", "old")
    (tmp_path / "b.json").mkdir()
    before = listing(tmp_path)
    with pytest.raises(PipelineError, match=r"b\.json: a folder where this stage writes a file; remove it and rerun"):
        with all_or_nothing():
            save_json(tmp_path / "a.json", "new")
            save_json(tmp_path / "b.json", "new")
    assert listing(tmp_path) == before  # a.json still old, no temporary file left


def test_a_write_error_without_a_file_name_names_the_output(tmp_path):
    with pytest.raises(OSError) as caught:
        with atomic_path(tmp_path / "big.npy"):
            raise OSError(errno.EFBIG, "File too large")  # as a file size limit reports it: no file name
    assert caught.value.filename == str(tmp_path / "big.npy") and caught.value.strerror == "File too large"
    assert listing(tmp_path) == {}


def test_a_stop_during_the_renames_is_handled_after_the_last(tmp_path, monkeypatch):
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    rename = os.replace

    def rename_then_signal(src, dst):
        rename(src, dst)
        signal.raise_signal(signal.SIGTERM)  # arrives between the first rename and the second

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(io.os, "replace", rename_then_signal)
    try:
        with pytest.raises(Stop):
            with all_or_nothing():
                save_json(tmp_path / "a.json", 1)
                save_json(tmp_path / "b.json", 2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert listing(tmp_path) == {"a.json": b"1\n", "b.json": b"2\n"}


def test_a_failed_write_leaves_no_folder_it_created(tmp_path):
    """A checkpoint that cannot be written leaves no empty run folder; folders that were there stay."""
    with pytest.raises(OSError):
        with atomic_path(tmp_path / "results/gan/seed0/checkpoint.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert listing(tmp_path) == {}
    (tmp_path / "results").mkdir()
    with pytest.raises(OSError):
        with all_or_nothing():
            save_json(tmp_path / "results/gan/seed0/a.json", 1)
            save_json(tmp_path / "results/real/b.json", 2)
            with atomic_path(tmp_path / "results/gan/seed0/deeper/c.npy"):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert listing(tmp_path) == {"results": b"<folder>"} and listing(tmp_path / "results") == {}
