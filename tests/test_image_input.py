"""A user's image folders and zips that are hostile or unusual (issue 23 item 4): each one is refused
with one line naming the cause, skipped and counted under skip_corrupt, or read by its real range."""
from __future__ import annotations

import io
import os
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.datasets import image_folder
from pipeline.errors import PipelineError


def png(value: int = 100, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


def bomb(side: int = 50_000) -> bytes:
    """A PNG whose header declares side x side RGB pixels (a decompression bomb: no pixel data follows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def zipped(path, members: list[tuple[str, bytes]]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return str(path)


def patch_member(path, name: str, field: str, value: int) -> None:
    """Set a member's general-purpose flags or compression method in both of its headers (zipfile
    will not write an encrypted member or an unknown method)."""
    local, central = {"flags": (6, 8), "method": (8, 10)}[field]
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        at = z.getinfo(name).header_offset
    raw[at + local:at + local + 2] = value.to_bytes(2, "little")
    at = raw.find(b"PK\x01\x02")
    while raw[at + 46:at + 46 + len(name)] != name.encode():
        at = raw.find(b"PK\x01\x02", at + 1)
    raw[at + central:at + central + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(raw))


def no_output(tmp_path) -> bool:
    return not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("members, message", [
    ([("a/0.png", png()), ("../x.png", png())], r"member '../x.png', a name outside the archive"),
    ([("a/0.png", png()), ("a/../../evil/y.png", png())], r"member 'a/../../evil/y.png', a name outside the archive"),
    ([("a/0.png", png()), ("/abs/x.png", png())], r"member '/abs/x.png', a name outside the archive"),
    ([("a/0.png", png()), ("C:/x.png", png())], r"member 'C:/x.png', a name outside the archive"),
    ([("a/0.png", png(1)), ("b/1.png", png()), ("a/0.png", png(2))], r"members stored more than once \(a/0.png\)"),
])
def test_zip_member_names_that_leave_the_archive_or_repeat_are_refused(tmp_path, members, message):
    with pytest.warns(UserWarning) if len({n for n, _ in members}) < len(members) else _nothing():
        path = zipped(tmp_path / "in.zip", members)
    with pytest.raises(PipelineError, match=message):
        image_folder.load(path, 8, tmp_path / "x.npy")
    assert no_output(tmp_path)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("case, message", [
    ("encrypted", "cannot be decoded (ValueError: an encrypted zip member (no password is given))"),
    ("compression", "cannot be decoded (ValueError: zip compression method 99 is not one of stored, deflate, bzip2, lzma)"),
    ("bomb", "cannot be decoded (DecompressionBombError: Image size (2500000000 pixels) exceeds limit"),
])
def test_unreadable_members_get_one_line_or_are_skipped_and_counted(tmp_path, case, message):
    members = [("a/0.png", png()), ("a/1.png", bomb() if case == "bomb" else png()), ("b/2.png", png())]
    path = zipped(tmp_path / "in.zip", members)
    if case != "bomb":
        patch_member(tmp_path / "in.zip", "a/1.png", *{"encrypted": ("flags", 0x1), "compression": ("method", 99)}[case])
    with pytest.raises(PipelineError, match="a/1.png: cannot be decoded") as err:
        image_folder.load(path, 8, tmp_path / "x.npy")
    assert message in str(err.value) and "\n" not in str(err.value) and no_output(tmp_path)
    raw = image_folder.load(path, 8, tmp_path / "x.npy", skip_corrupt=True)
    assert len(raw.images) == 2 and raw.notes["skipped_corrupt"] == 1 and raw.notes["skipped_files"] == ["a/1.png"]


def test_symlinked_class_folders_are_followed_and_loops_refused(tmp_path):
    root, elsewhere = tmp_path / "imgs", tmp_path / "store" / "dog"
    for folder, value in ((root / "cat", 10), (elsewhere, 200)):
        folder.mkdir(parents=True)
        (folder / "0.png").write_bytes(png(value))
    os.symlink(elsewhere, root / "dog")
    raw = image_folder.load(str(root), 8, tmp_path / "x.npy")
    assert raw.classes == ["cat", "dog"] and raw.labels.tolist() == [0, 1] and raw.images[1, 0, 0, 0] == 200
    os.symlink(root, root / "dog" / "loop")
    with pytest.raises(PipelineError, match="leads to a folder already read"):
        image_folder.load(str(root), 8, tmp_path / "y.npy")
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("array, fmt, expected", [
    (np.full((8, 8), 32768, np.uint16), "PNG", 128),   # 16-bit grey: Pillow's own conversion clips to 255
    (np.full((8, 8), 1000, np.uint16), "PNG", 4),
    (np.full((8, 8), 65535, np.uint16), "TIFF", 255),
    (np.full((8, 8), 0.5, np.float32), "TIFF", 128),  # float: Pillow's own conversion gives 0
])
def test_wide_images_are_scaled_by_their_full_range(tmp_path, array, fmt, expected):
    (tmp_path / "a").mkdir()
    Image.fromarray(array).save(tmp_path / "a" / f"0.{fmt.lower()}", fmt)
    raw = image_folder.load(str(tmp_path / "a"), 4, tmp_path / "x.npy")
    assert (raw.images == expected).all()


def test_a_float_image_outside_0_1_is_refused_by_name(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((8, 8), 3.0, np.float32)).save(tmp_path / "a" / "0.tiff", "TIFF")
    with pytest.raises(PipelineError, match=r"0.tiff: cannot be decoded \(ValueError: F pixel values 3..3 lie outside 0..1\)"):
        image_folder.load(str(tmp_path / "a"), 4, tmp_path / "x.npy")


def test_a_full_disk_fails_before_any_image_is_written(tmp_path, monkeypatch):
    """The output's blocks are reserved first: no SIGBUS from writing a memory map on a full disk."""
    import errno

    from pipeline.datasets import stream

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0.png").write_bytes(png())

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stream.os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space left on device") as err:
        image_folder.load(str(tmp_path / "a"), 8, tmp_path / "x.npy")
    assert ".x.npy." in err.value.filename and no_output(tmp_path)
