"""The data stage: registry, resizing, and the HTTP download path against a loopback server."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from pipeline import data
from pipeline.datasets import fashion_mnist
from pipeline.errors import PipelineError
from pipeline.io import load_json, load_npy


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
