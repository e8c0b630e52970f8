"""The data stage: registry, resizing, and the HTTP download path against a loopback server."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from conftest import ROOT, alive, wait_until_gone
from pipeline.datasets import fashion_mnist
from pipeline.errors import PipelineError
from pipeline.io import load_json, load_npy
from pipeline.stages import data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def idx_files():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    return {"train-images-idx3-ubyte": idx_bytes(images), "train-labels-idx1-ubyte": idx_bytes(labels)}, images, labels


class Server:
    """A loopback HTTP server whose responses the test sets per path: bytes, or an int status."""

    def __init__(self):
        self.routes: dict[str, bytes | int] = {}
        self.truncate: set[str] = set()
        routes, truncate = self.routes, self.truncate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = routes.get(self.path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(idx_files, monkeypatch):
    files, _, _ = idx_files
    monkeypatch.setattr(fashion_mnist, "FILES", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    srv = Server()
    for name, body in files.items():
        srv.routes[f"/{name}.gz"] = gzip.compress(body)
    yield srv
    srv.close()


def fashion_params(tiny_params, resolution=32):
    tiny_params["dataset"].update(name="fashion_mnist", resolution=resolution)
    return tiny_params


def test_download_writes_verified_data(tmp_path, server, idx_files, tiny_params):
    _, images, labels = idx_files
    meta = data.prepare(fashion_params(tiny_params), tmp_path / "data", local_dir=None, url=server.url)
    out = load_npy(tmp_path / "data/images.npy")
    assert out.shape == (12, 32, 32, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, 2:30, 2:30, 0], images)  # 28 -> 32 is a 2-pixel zero pad
    assert out[:, :2].max() == 0
    np.testing.assert_array_equal(load_npy(tmp_path / "data/labels.npy"), labels)
    assert meta["source"] == server.url and meta["resize"] == "zero-pad 28->32"
    assert load_json(tmp_path / "data/meta.json")["counts_per_class"][:2] == [2, 2]


def test_local_copy_is_tried_first(tmp_path, server, idx_files, tiny_params):
    files, images, _ = idx_files
    local = tmp_path / "debian"
    local.mkdir()
    for name, body in files.items():
        (local / f"{name}.gz").write_bytes(gzip.compress(body, compresslevel=1))  # other .gz bytes, same content
    meta = data.prepare(fashion_params(tiny_params), tmp_path / "data", local_dir=str(local), url="http://127.0.0.1:9")
    assert meta["source"] == str(local)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda s: s.routes.update({"/train-images-idx3-ubyte.gz": gzip.compress(b"\0\0\x08\x01" + bytes(8))}),
         "checksum mismatch"),
        (lambda s: s.truncate.add("/train-labels-idx1-ubyte.gz"), "truncated download"),
        (lambda s: s.routes.update({"/train-images-idx3-ubyte.gz": s.routes["/train-images-idx3-ubyte.gz"][:-40]}),
         "corrupt or truncated gzip"),
        (lambda s: s.routes.update({"/train-labels-idx1-ubyte.gz": 404}), "HTTP error 404"),
        (lambda s: s.routes.update({"/train-images-idx3-ubyte.gz": 500}), "HTTP error 500"),
    ],
)
def test_bad_downloads_fail_cleanly(tmp_path, server, tiny_params, spoil, message):
    spoil(server)
    with pytest.raises(PipelineError, match=message):
        data.prepare(fashion_params(tiny_params), tmp_path / "data", local_dir=None, url=server.url)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_offline_download_says_so(tmp_path, tiny_params, monkeypatch):
    with pytest.raises(PipelineError, match="cannot download"):
        data.prepare(fashion_params(tiny_params), tmp_path / "data", local_dir=None, url="http://127.0.0.1:9")


def test_digits_are_resized(tmp_path, tiny_params):
    meta = data.prepare(tiny_params, tmp_path / "data", local_dir=None, url=None)
    images = load_npy(tmp_path / "data/images.npy")
    assert images.shape == (1797, 16, 16, 1) and meta["resize"] == "bilinear resize 8->16"
    assert images.max() > 200


def test_debian_copy_checksums_match_when_installed(tmp_path, tiny_params):
    if not (fashion_mnist.LOCAL_DIR and (fashion_mnist.Path(fashion_mnist.LOCAL_DIR)).exists()):
        pytest.skip("dataset-fashion-mnist is not installed")
    tiny_params["dataset"].update(name="fashion_mnist", resolution=32, max_images=100)
    meta = data.prepare(tiny_params, tmp_path / "data", local_dir=fashion_mnist.LOCAL_DIR, url=None)
    assert meta["count"] == 100 and meta["shape"] == [32, 32, 1]


# --- CIFAR binary archives, built here in the real format ------------------------------------------

def tar_gz(folder: str, files: dict[str, bytes]) -> bytes:
    """A .tar.gz holding ``files`` in ``folder``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member, body in files.items():
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def cifar_archive(name: str, n_per_file: int = 4) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A .tar.gz in the layout of the Toronto binary archive; and the train images and labels in it."""
    from pipeline.datasets import cifar

    layout = cifar.LAYOUTS[name]
    rng = np.random.default_rng(1)
    n_classes = 10 if name == "cifar10" else 100
    files, train_images, train_labels = {}, [], []
    for member in (*layout.train, *layout.test):
        images = rng.integers(0, 256, (n_per_file, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, n_classes, n_per_file)
        planes = images.transpose(0, 3, 1, 2).reshape(n_per_file, -1)  # R, G, B planes, rows first
        head = labels[:, None] if layout.label_bytes == 1 else np.stack([labels // 5, labels], 1)  # coarse, fine
        files[member] = np.concatenate([head.astype(np.uint8), planes], 1).tobytes()
        if member in layout.train:
            train_images.append(images)
            train_labels.append(labels)
    files[layout.names] = "\n".join(f"class{i}" for i in range(n_classes)).encode() + b"\n"
    return tar_gz(layout.folder, files), np.concatenate(train_images), np.concatenate(train_labels)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_binary_archive_downloads_parses_and_verifies(tmp_path, tiny_params, name):
    from pipeline.datasets import cifar

    archive, images, labels = cifar_archive(name)
    srv = Server()
    srv.routes["/a.tar.gz"] = archive
    try:
        raw = cifar.load(name, url=f"{srv.url}/a.tar.gz", md5=hashlib.md5(archive).hexdigest())
        np.testing.assert_array_equal(raw.images, images)
        np.testing.assert_array_equal(raw.labels, labels)
        assert len(raw.classes) == (10 if name == "cifar10" else 100) and raw.split == "train"
        test = cifar.load(name, url=f"{srv.url}/a.tar.gz", md5=hashlib.md5(archive).hexdigest(), split="test")
        assert len(test.images) == 4
        with pytest.raises(PipelineError, match="checksum mismatch"):
            cifar.load(name, url=f"{srv.url}/a.tar.gz")  # the published md5: not this archive's
        for route, body, message in (("/trunc", archive, "truncated download"), ("/404", 404, "HTTP error 404"),
                                     ("/corrupt", archive[:-200] + bytes(200), "corrupt or truncated archive")):
            srv.routes[route] = body
            if route == "/trunc":
                srv.truncate.add(route)
            md5 = hashlib.md5(body).hexdigest() if isinstance(body, bytes) else None
            with pytest.raises(PipelineError, match=message):
                cifar.load(name, url=f"{srv.url}{route}", md5=md5)
    finally:
        srv.close()
    local = tmp_path / "c.tar.gz"
    local.write_bytes(archive)
    tiny_params["dataset"].update(name=name, resolution=32, path=str(local))
    with pytest.raises(PipelineError, match="checksum mismatch"):  # the data stage checks the published md5
        data.prepare(tiny_params, tmp_path / "data", None, None)
    assert not (tmp_path / "data").exists()


# --- a user's image folder ---------------------------------------------------------------------------

def write_images(root, layout: dict[str, tuple[int, int]], fmt: str = "PNG"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for rel, (w, h) in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def test_image_folder_with_class_subfolders_zip_and_corrupt_files(tmp_path, tiny_params):
    import zipfile

    from pipeline.datasets import image_folder

    root = tmp_path / "imgs"
    write_images(root, {"cat/a.png": (40, 30), "cat/b.png": (30, 30), "dog/c.png": (20, 50), "dog/d.png": (16, 16)})
    tiny_params["dataset"].update(name="image_folder", resolution=16, path=str(root))
    meta = data.prepare(tiny_params, tmp_path / "data", None, None)
    assert meta["classes"] == ["cat", "dog"] and meta["counts_per_class"] == [2, 2] and meta["labelled"]
    assert "centre crop" in meta["resize"] and load_npy(tmp_path / "data/images.npy").shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(load_npy(tmp_path / "data/labels.npy"), [0, 0, 1, 1])
    # the same tree zipped inside one top folder
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        for p in sorted(root.rglob("*.png")):
            z.write(p, f"train/{p.relative_to(root).as_posix()}")
    raw = image_folder.load(str(tmp_path / "imgs.zip"), 16, tmp_path / "zip.npy")
    np.testing.assert_array_equal(raw.images, load_npy(tmp_path / "data/images.npy"))
    # a file that cannot be decoded: an error naming it, or skipped and counted
    (root / "dog" / "e.png").write_bytes(b"not a png")
    with pytest.raises(PipelineError, match="dog/e.png: cannot be decoded"):
        image_folder.load(str(root), 16, tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()
    raw = image_folder.load(str(root), 16, tmp_path / "x.npy", skip_corrupt=True)
    assert len(raw.images) == 4 and raw.notes["skipped_corrupt"] == 1


def test_only_28_to_32_is_a_zero_pad():
    """Fashion-MNIST's 28 px get a 2-pixel border; any other size is resized (STL-10's 96 px at 128 got a
    16-pixel black frame)."""
    from pipeline.images import fit_to_resolution

    rng = np.random.default_rng(0)
    padded, how = fit_to_resolution(rng.integers(1, 256, (2, 28, 28, 1), dtype=np.uint8), 32)
    assert how == "zero-pad 28->32" and padded[:, :2].max() == 0 and padded[:, 2:30, 2:30].min() > 0
    for side, resolution in ((96, 128), (30, 32), (24, 32)):
        images = rng.integers(1, 256, (2, side, side, 3), dtype=np.uint8)
        out, how = fit_to_resolution(images, resolution)
        assert how == f"bilinear resize {side}->{resolution}" and out.shape == (2, resolution, resolution, 3)
        assert out[:, 0].min() > 0  # no black border


def test_image_folder_skips_hidden_folders_and_reads_a_zipped_flat_folder_as_unlabelled(tmp_path):
    import zipfile

    from pipeline.datasets import image_folder

    root = tmp_path / "imgs"
    write_images(root, {"cat/a.png": (16, 16), "dog/b.png": (16, 16), ".ipynb_checkpoints/c.png": (16, 16),
                        "cat/.cache/d.png": (16, 16)})
    raw = image_folder.load(str(root), 8, tmp_path / "classes.npy")
    assert raw.classes == ["cat", "dog"] and len(raw.images) == 2
    flat = tmp_path / "flat"
    write_images(flat, {"a.png": (16, 16), "b.png": (16, 16)})
    with zipfile.ZipFile(tmp_path / "flat.zip", "w") as z:  # as `zip -r flat.zip flat/` makes it
        for p in sorted(flat.iterdir()):
            z.write(p, f"flat/{p.name}")
    for path in (flat, tmp_path / "flat.zip"):
        assert not image_folder.labelled(path), path


def test_a_corrupt_file_just_after_the_last_image_needed_is_never_read(tmp_path):
    """Whatever the chunk size: the default chunk once read up to the next good file after the last one needed."""
    from pipeline.datasets import image_folder

    root = tmp_path / "imgs"
    write_images(root, {f"c{i % 3}/{i:02d}.png": (16, 16) for i in range(12)})
    files = sorted(root.rglob("*.png"))
    files[5].write_bytes(b"broken")  # the 6th file: the 5 before it are the ones asked for
    for chunk in (256, 5, 2):
        raw = image_folder.load(str(root), 8, tmp_path / f"five{chunk}.npy", max_images=5, chunk=chunk)
        assert len(raw.images) == 5 and raw.notes["skipped_corrupt"] == 0, chunk


def reference_npy(files, resolution: int, path) -> bytes:
    """images.npy as the data stage wrote it before streaming: each file decoded in turn, stacked, np.save."""
    import io

    from PIL import Image

    images = []
    for f in files:
        with Image.open(io.BytesIO(f.read_bytes())) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            images.append(np.asarray(im.crop((left, top, left + side, top + side))
                                     .resize((resolution, resolution), Image.BICUBIC), np.uint8))
    np.save(path, np.stack(images))
    return path.read_bytes()


def test_streamed_preparation_writes_the_same_bytes_as_decoding_in_one_process(tmp_path, tiny_params):
    from pipeline.datasets import image_folder, stream

    root = tmp_path / "imgs"
    sizes = [(40, 30), (30, 30), (20, 50), (16, 16), (33, 21), (64, 48), (18, 18)]
    write_images(root, {f"c{i % 3}/{i:02d}.jpg": wh for i, wh in enumerate(sizes)}, fmt="JPEG")
    write_images(root, {f"c{i % 3}/{i:02d}.png": wh for i, wh in enumerate(sizes)})
    files = sorted(root.rglob("*.*"))
    expected = reference_npy(files, 16, tmp_path / "reference.npy")
    # chunks of 3 images decoded by 2 worker processes, written into the memory map in order
    raw = image_folder.load(str(root), 16, tmp_path / "streamed.npy", chunk=3, n_workers=2)
    assert (tmp_path / "streamed.npy").read_bytes() == expected
    assert raw.checksums[stream.PIXELS] == hashlib.sha256(load_npy(tmp_path / "reference.npy").tobytes()).hexdigest()
    np.testing.assert_array_equal(raw.labels, [int(f.parent.name[1]) for f in files])
    # the first max_images: a corrupt file after them is not read
    files[-1].write_bytes(b"broken")
    image_folder.load(str(root), 16, tmp_path / "five.npy", max_images=5)
    assert (tmp_path / "five.npy").read_bytes() == reference_npy(files[:5], 16, tmp_path / "r5.npy")
    files[-1].unlink()
    files = files[:-1]
    # the data stage: the first max_images, and a corrupt file skipped (the array is shortened)
    (root / "c0" / "00.jpg").write_bytes(b"broken")
    tiny_params["dataset"].update(name="image_folder", resolution=16, path=str(root), max_images=9, skip_corrupt=True)
    meta = data.prepare(tiny_params, tmp_path / "data", None, None)
    assert (tmp_path / "data/images.npy").read_bytes() == reference_npy(files[1:10], 16, tmp_path / "r9.npy")
    assert meta["count"] == 9 and meta["skipped_corrupt"] == 1 and meta["skipped_files"] == ["c0/00.jpg"]
    tiny_params["dataset"].update(max_images=None)
    with pytest.MonkeyPatch.context() as mp:  # the pool, and the skip past the allocated rows
        mp.setattr(stream, "CHUNK", 4)
        data.prepare(tiny_params, tmp_path / "all", None, None)
    assert (tmp_path / "all/images.npy").read_bytes() == reference_npy(files[1:], 16, tmp_path / "r.npy")
    assert not [p.name for p in (tmp_path / "all").iterdir() if p.name.endswith(".tmp")]


def test_a_flat_image_folder_is_unlabelled_and_refuses_what_needs_labels(tmp_path, tiny_params):
    from pipeline import config
    from conftest import write_params

    write_images(tmp_path / "flat", {"a.jpg": (20, 20), "b.jpg": (24, 20)}, fmt="JPEG")
    tiny_params["dataset"].update(name="image_folder", resolution=16, path=str(tmp_path / "flat"))
    meta = data.prepare(tiny_params, tmp_path / "data", None, None)
    assert meta["classes"] == ["(unlabelled)"] and not meta["labelled"]
    tiny_params["study"]["methods"] = ["gan", "cgan"]
    tiny_params["methods"]["cgan"] = {**tiny_params["methods"]["cgan"]}
    with pytest.raises(PipelineError, match="has no class subfolders, so its images have no labels, but run cgan needs them"):
        config.load(write_params(tiny_params, tmp_path / "p.yaml"))


# --- STL-10 --------------------------------------------------------------------------------------------

def stl10_archive() -> tuple[bytes, dict[str, np.ndarray]]:
    """stl10_binary.tar.gz's layout with a few images per split (channel planes, column by column)."""
    rng = np.random.default_rng(2)
    images = {split: rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
              for split, n in (("train", 3), ("test", 2), ("unlabeled", 4))}
    files = {f"{split}_X.bin": x.transpose(0, 3, 2, 1).tobytes() for split, x in images.items()}  # N, C, W, H
    files.update({"train_y.bin": bytes([1, 10, 4]), "test_y.bin": bytes([2, 2]),
                  "class_names.txt": "\n".join(f"c{i}" for i in range(10)).encode()})
    return tar_gz("stl10_binary", files), images


def test_stl10_splits_from_the_binary_archive(tmp_path, tiny_params):
    from pipeline import config
    from pipeline.datasets import stl10
    from conftest import write_params

    archive, images = stl10_archive()
    srv = Server()
    srv.routes["/stl.tar.gz"] = archive
    md5 = hashlib.md5(archive).hexdigest()
    try:
        train = stl10.load(url=f"{srv.url}/stl.tar.gz", md5=md5)
        np.testing.assert_array_equal(train.images, images["train"])
        np.testing.assert_array_equal(train.labels, [0, 9, 3])
        both = stl10.load(url=f"{srv.url}/stl.tar.gz", md5=md5, split="train+unlabeled")
        assert len(both.images) == 7 and both.classes == ["(unlabelled)"] and not both.notes["labelled"]
        with pytest.raises(PipelineError, match="checksum mismatch"):
            stl10.load(url=f"{srv.url}/stl.tar.gz")
    finally:
        srv.close()
    local = tmp_path / "stl.tar.gz"
    local.write_bytes(archive)
    test = stl10.load(path=str(local), md5=md5, split="test")
    np.testing.assert_array_equal(test.images, images["test"])
    tiny_params["dataset"].update(name="stl10", resolution=32, path=str(local), split="unlabeled")
    tiny_params["evaluate"]["metrics"] = ["fid", "classes"]
    with pytest.raises(PipelineError, match="stl10's unlabeled split has no labels, but metric classes needs them"):
        config.load(write_params(tiny_params, tmp_path / "p.yaml"))


# --- CelebA ----------------------------------------------------------------------------------------------

def celeba_zip(n: int = 5) -> tuple[bytes, np.ndarray]:
    """img_align_celeba.zip's layout: n 178x218 JPEGs img_align_celeba/NNNNNN.jpg (and a stray file);
    and their expected 32 px crops (centre 108x108, bicubic)."""
    import io
    import zipfile

    from PIL import Image

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:218, 0:178]
    buf, expected = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("img_align_celeba/", b"")
        z.writestr("README.txt", b"not an image")
        for i in range(1, n + 1):
            face = np.stack([x * (i + 1) % 256, y * 2 % 256, (x + y + 40 * i) % 256], -1)
            face = (face + rng.integers(0, 30, face.shape)).clip(0, 255).astype(np.uint8)
            jpeg = io.BytesIO()
            Image.fromarray(face).save(jpeg, "JPEG", quality=90)
            z.writestr(f"img_align_celeba/{i:06d}.jpg", jpeg.getvalue())
            with Image.open(jpeg) as im:
                expected.append(np.asarray(im.convert("RGB").crop((35, 55, 143, 163)).resize((32, 32), Image.BICUBIC)))
    return buf.getvalue(), np.stack(expected)


def celeba_params(tiny_params, **source):
    tiny_params["dataset"].update({"name": "celeba", "resolution": 32, "path": None, "url": None, **source})
    return tiny_params


def test_celeba_zip_from_a_url_or_a_path(tmp_path, tiny_params, monkeypatch):
    from pipeline.datasets import celeba

    archive, expected = celeba_zip()
    monkeypatch.setattr(celeba, "MD5", hashlib.md5(archive).hexdigest())
    srv = Server()
    srv.routes["/img_align_celeba.zip"] = archive
    try:
        meta = data.prepare(celeba_params(tiny_params, url=f"{srv.url}/img_align_celeba.zip"), tmp_path / "data",
                            None, None)
    finally:
        srv.close()
    np.testing.assert_array_equal(load_npy(tmp_path / "data/images.npy"), expected)
    np.testing.assert_array_equal(load_npy(tmp_path / "data/labels.npy"), np.zeros(5))
    assert meta["classes"] == ["(unlabelled)"] and not meta["labelled"] and meta["count"] == 5
    assert "centre crop 108x108" in meta["resize"] and f"img_align_celeba.zip (md5 {celeba.MD5})" in meta["checksums_sha256"]
    local = tmp_path / "img_align_celeba.zip"
    local.write_bytes(archive)
    meta = data.prepare(celeba_params(tiny_params, path=str(local), max_images=3), tmp_path / "three", None, None)
    np.testing.assert_array_equal(load_npy(tmp_path / "three/images.npy"), expected[:3])
    assert meta["source"] == str(local)


def test_bad_celeba_archives_fail_cleanly(tmp_path, tiny_params, monkeypatch):
    from pipeline import config
    from pipeline.datasets import celeba
    from conftest import write_params

    archive, _ = celeba_zip()
    at = archive.find(b"img_align_celeba/000002.jpg") + 300
    corrupt = archive[:at] + bytes(64) + archive[at + 64:]  # inside the second member's compressed data
    srv = Server()
    srv.routes.update({"/good.zip": archive, "/corrupt.zip": corrupt, "/truncated.zip": archive, "/gone.zip": 404})
    srv.truncate.add("/truncated.zip")
    cases = [("/good.zip", celeba.MD5, "checksum mismatch"),  # the published md5, not this zip's
             ("/corrupt.zip", hashlib.md5(corrupt).hexdigest(), r"img_align_celeba/000002.jpg: cannot be decoded"),
             ("/truncated.zip", hashlib.md5(archive).hexdigest(), "truncated download"),
             ("/gone.zip", hashlib.md5(archive).hexdigest(), "HTTP error 404")]
    try:
        for route, md5, message in cases:
            monkeypatch.setattr(celeba, "MD5", md5)
            with pytest.raises(PipelineError, match=message):
                data.prepare(celeba_params(tiny_params, url=srv.url + route), tmp_path / "data", None, None)
            assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir()), route
    finally:
        srv.close()
    half = tmp_path / "half.zip"
    half.write_bytes(archive[: len(archive) // 2])
    monkeypatch.setattr(celeba, "MD5", hashlib.md5(half.read_bytes()).hexdigest())
    with pytest.raises(PipelineError, match="corrupt or truncated archive"):
        data.prepare(celeba_params(tiny_params, path=str(half)), tmp_path / "data", None, None)
    with pytest.raises(PipelineError, match="gdown 0B7EVK8r0v71pZjFTYXZWM3FlRnM"):
        data.prepare(celeba_params(tiny_params), tmp_path / "data", None, None)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    tiny_params["evaluate"]["metrics"] = ["fid", "inception_score"]
    with pytest.raises(PipelineError, match="celeba is read without its annotations, so its images have no labels, "
                                            "but metric inception_score needs them"):
        config.load(write_params(tiny_params, tmp_path / "p.yaml"))


def test_a_fifo_in_an_image_folder_is_refused_before_any_read(tmp_path):
    from pipeline.datasets import image_folder

    root = tmp_path / "imgs"
    write_images(root, {"a/01.png": (8, 8), "b/02.png": (8, 8)})
    os.mkfifo(root / "a" / "zz_fifo.png")  # opening it for reading would block forever
    with pytest.raises(PipelineError, match=r"zz_fifo.png is not a regular file \(a FIFO, socket or device\)"):
        image_folder.load(str(root), 8, tmp_path / "x.npy")
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))


def test_a_killed_decode_worker_fails_the_stage_with_one_line(tmp_path, monkeypatch):
    """A worker dying mid-task (SIGKILL, the out-of-memory killer) breaks the pool: one PipelineError."""
    from pipeline.datasets import image_folder, stream

    root = tmp_path / "imgs"
    write_images(root, {f"c/{i:02d}.png": (8, 8) for i in range(12)})
    monkeypatch.setattr(stream, "decode_chunk", killed)  # forked workers see it
    with pytest.raises(PipelineError, match="a decode worker process died while reading"):
        image_folder.load(str(root), 8, tmp_path / "x.npy", chunk=3, n_workers=2)
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))


def killed(*args) -> None:
    """A decode task whose worker is killed (stands in for stream.decode_chunk)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_decode_workers_die_with_their_parent(tmp_path):
    """SIGKILL of the process that owns the pool takes its workers with it (no orphans left blocked)."""
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, os, sys, time
        from concurrent.futures import ProcessPoolExecutor
        from pipeline.errors import die_with_parent
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent,
                                   initargs=(os.getpid(),))
        pool.submit(os.getpid).result()
        print(" ".join(str(p.pid) for p in pool._processes.values()), flush=True)
        time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(alive(p) for p in workers)
    proc.kill()
    proc.wait()
    assert not wait_until_gone(workers, 10), "decode workers outlived their killed parent"
