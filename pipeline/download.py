"""HTTP(S) downloads that are verified before anything is kept.

A download streams to a temporary file, is checked against the server's Content-Length (a short
read is reported as truncated) and against a sha256, and only then is renamed into place. Any
failure removes the temporary file and raises PipelineError naming the URL and the cause.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.io import atomic_path

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stream(url: str, dest: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected is not None else None
            got = 0
            with tqdm(total=expected, unit="B", unit_scale=True, desc=Path(url).name, leave=False,
                      disable=None) as bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as err:
                        raise PipelineError(f"{url}: truncated download ({err})") from None
                    if not block:
                        break
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        raise PipelineError(f"{url}: HTTP error {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise PipelineError(f"{url}: cannot download ({err.reason}); are you offline?") from None
    except TimeoutError:
        raise PipelineError(f"{url}: timed out after {timeout:g} s") from None
    except (http.client.HTTPException, ConnectionError) as err:  # e.g. the server closed without answering
        raise PipelineError(f"{url}: no valid answer ({type(err).__name__}: {err}); try again later") from None
    if expected is not None and got != expected:
        raise PipelineError(f"{url}: truncated download ({got} of {expected} bytes)")


def verify_sha256(path: Path, sha256: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise PipelineError(f"{what}: checksum mismatch (sha256 {actual[:16]}..., expected {sha256[:16]}...)")


def download(url: str, dest: str | Path, sha256: str | None, *, gunzip: bool = False, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest``, optionally gunzipped; ``sha256`` is of the file as stored (None:
    the caller verifies and records it, as for weights whose checksum is pinned on first use)."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if gunzip:
            raw = tmp.with_name(tmp.name + ".gz")
            try:
                _stream(url, raw, timeout)
                gunzip_to(raw, tmp, what=url)
            finally:
                raw.unlink(missing_ok=True)
        else:
            _stream(url, tmp, timeout)
        if sha256 is not None:
            verify_sha256(tmp, sha256, url)
    return dest


def fetch(url: str, dest: str | Path, sha256: str) -> Path:
    """The file at ``dest``, downloaded from ``url`` first if absent; its sha256 is checked either way."""
    dest = Path(dest)
    if dest.exists():
        verify_sha256(dest, sha256, f"{dest} (delete it to download again)")
        return dest
    return download(url, dest, sha256)


def gunzip_to(src: Path, dest: Path, what: str) -> None:
    """Decompress ``src`` into ``dest``; a corrupt or truncated archive raises PipelineError."""
    try:
        with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise PipelineError(f"{what}: corrupt or truncated gzip data ({err})") from None
