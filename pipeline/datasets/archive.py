"""Dataset archives: fetch one (a local path or a download), check its published md5, read .tar.gz members.

Members are read straight from the .tar.gz into memory, never extracted, so no member name can
write outside a folder (what PEP 706's ``data`` filter guards against during extraction); only the
members asked for are read, and each must be a regular file.
"""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from pipeline.download import download
from pipeline.errors import PipelineError


def digests(path: Path) -> tuple[str, str]:
    """md5 and sha256 of a file, in one read."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def fetch(dataset: str, path: str | None, url: str, md5: str, work: Path) -> tuple[Path, str, dict[str, str]]:
    """The archive (``path`` if given, else downloaded from ``url`` into ``work``) after its md5 check,
    where it came from, and its checksums for meta.json."""
    if path:
        archive, source = Path(path), str(path)
        if not archive.is_file():
            raise PipelineError(f"{dataset}: dataset.path {archive} is not a file (the dataset's archive)")
    else:
        archive, source = download(url, work / Path(url).name, sha256=None), url
    actual, sha256 = digests(archive)
    if actual != md5:
        raise PipelineError(f"{dataset}: {source}: checksum mismatch (md5 {actual}, published {md5})")
    return archive, source, {f"{Path(source).name} (md5 {md5})": sha256}


def read_members(archive: Path, names: list[str]) -> dict[str, bytes]:
    """The bytes of the named members of a .tar.gz."""
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in names:
                try:
                    member = tar.getmember(name)
                except KeyError:
                    raise PipelineError(f"{archive}: no {name} in the archive") from None
                if not member.isfile():
                    raise PipelineError(f"{archive}: {member.name} is not a regular file")
                out[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise PipelineError(f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from None
    return out
