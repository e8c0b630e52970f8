"""data stage: fetch the configured dataset and write data/images.npy, labels.npy, meta.json.

Images are uint8 N,H,W,C at ``dataset.resolution``; labels int64; meta.json records the source,
the checksums verified, the counts per class and how images were resized. Nothing is written
unless every source file was fetched and verified.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import config
from pipeline.datasets import REGISTRY
from pipeline.datasets import fashion_mnist
from pipeline.errors import CommandLine, run_cli
from pipeline.images import fit_to_resolution
from pipeline.io import all_or_nothing, save_json, save_npy


ARCHIVES = ("cifar10", "cifar100", "stl10")  # datasets read from one published archive (path or url, split)
STREAMED = ("image_folder", "celeba")  # image files decoded by worker processes into images.npy (datasets/stream.py)


def _options(ds: dict, out_dir: Path, local_dir: str | None, url: str | None) -> dict:
    """The loader's keyword options for the configured dataset."""
    if ds["name"] == "fashion_mnist":
        return {"local_dir": local_dir, "base_url": url}
    if ds["name"] in ARCHIVES:
        return {"path": ds.get("path"), "url": ds.get("url"), "split": ds.get("split", "train")}
    if ds["name"] in STREAMED:
        source = {"skip_corrupt": ds.get("skip_corrupt", False)} if ds["name"] == "image_folder" else {"url": ds.get("url")}
        return {"path": ds.get("path"), "resolution": ds["resolution"], "max_images": ds["max_images"],
                "out": out_dir / "images.npy", **source}
    return {}


def prepare(params: dict, out_dir: Path, local_dir: str | None, url: str | None) -> dict:
    ds = params["dataset"]
    raw = REGISTRY[ds["name"]](**_options(ds, out_dir, local_dir, url))
    images, labels = raw.images, raw.labels
    if ds["name"] in STREAMED:  # written already: the first max_images, decoded at the resolution
        how = raw.notes["resize"]
    else:
        if ds["max_images"] is not None:
            images, labels = images[: ds["max_images"]], labels[: ds["max_images"]]
        images, how = fit_to_resolution(images, ds["resolution"])
    counts = np.bincount(labels, minlength=len(raw.classes))
    meta = {
        "dataset": ds["name"],
        "source": raw.source,
        "split": raw.split,
        "checksums_sha256": raw.checksums,
        "count": int(len(images)),
        "shape": list(images.shape[1:]),
        "resize": how,
        "classes": raw.classes,
        "counts_per_class": counts.tolist(),
        **raw.notes,
    }
    with all_or_nothing():  # a streamed dataset's images.npy is in place already, as it was decoded
        if ds["name"] not in STREAMED:
            save_npy(out_dir / "images.npy", np.ascontiguousarray(images))
        save_npy(out_dir / "labels.npy", labels)
        save_json(out_dir / "meta.json", meta)
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="python -m pipeline.stages.data", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: %(default)s)")
    parser.add_argument("--local-dir", default=fashion_mnist.LOCAL_DIR,
                        help="folder of idx .gz files tried first (default: %(default)s)")
    parser.add_argument("--url", default=fashion_mnist.BASE_URL,
                        help="base URL of the idx .gz files, tried next (default: %(default)s)")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    meta = prepare(params, args.out, args.local_dir, args.url)
    print(f"data: {meta['count']} {meta['dataset']} images {meta['shape']} from {meta['source']} ({meta['resize']})")


if __name__ == "__main__":
    run_cli(main)
