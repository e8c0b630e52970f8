"""Out-of-core training: images over train.data_budget_mb stay memory-mapped, with the same results."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import context
from pipeline.methods.base import MappedImages
from pipeline.stages.train import run as train_run


def test_mapped_images_gather_rows_in_the_order_given(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (3000, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", array)
    mapped = MappedImages(np.load(tmp_path / "images.npy", mmap_mode="r"), torch.device("cpu"))
    held = torch.from_numpy(array)
    assert len(mapped) == 3000 and mapped.shape == (3000, 4, 4, 3)
    for idx in (torch.randint(3000, (1100,)),  # several threads, repeated and unsorted rows
                torch.tensor([5, 5, 2999, 0]), torch.randint(3000, (4, 7))):
        assert torch.equal(mapped[idx], held[idx])


def test_the_budget_chooses_memory_or_the_memory_map(digits_data):
    nbytes = np.load(digits_data / "images.npy", mmap_mode="r").nbytes
    for budget, mapped in ((None, False), (nbytes / 2**20, False), (nbytes / 2**20 - 0.01, True), (0, True)):
        data = context.load_data(digits_data, {}, (), torch.device("cpu"), budget)
        assert isinstance(data.images, MappedImages) == mapped
        assert data.shape == (16, 16, 1) and len(data.images) == 1797
        np.testing.assert_array_equal(data.images_numpy(), np.load(digits_data / "images.npy"))


@pytest.mark.parametrize("run", ["gan", "biggan", "cgan", "p2gan", "bigbigan"])
def test_memory_mapped_training_gives_the_same_weights(tmp_path, tiny_params, digits_data, run):
    tiny_params["train"].update(steps=4, checkpoint_every=4, log_every=4)
    weights = {}
    for budget in (None, 0):  # held in memory; read from the memory map
        tiny_params["train"]["data_budget_mb"] = budget
        trainer = train_run(tiny_params, run, 0, digits_data, tmp_path / str(budget), {})
        assert isinstance(trainer.m.data.images, MappedImages) == (budget == 0)
        weights[budget] = trainer.m.nets.state_dict()
        trainer.m.nets.eval()
        torch.manual_seed(1)
        cond, _ = trainer.m.sample_conditions(8)  # p2gan: from real images' posteriors
        with torch.no_grad():
            weights[budget]["samples"] = trainer.m.generate(8, cond)
    assert weights[None].keys() == weights[0].keys()
    for name, value in weights[None].items():
        assert torch.equal(value, weights[0][name]), name


def test_features_stream_from_the_memory_map(digits_data, default_params):
    from pipeline import backbones
    from pipeline.features import simclr
    from pipeline.features import embed

    images = np.load(digits_data / "images.npy", mmap_mode="r")
    cfg = {**default_params["features"]["simclr"], "steps": 3, "batch_size": 16, "width": 4}
    encoders = []
    for budget in (None, 0):  # SimCLR on the images in memory, and gathering its batches from the memory map
        torch.manual_seed(0)
        encoders.append(simclr.train(images, cfg, torch.device("cpu"), budget)[0].state_dict())
    for name, value in encoders[0].items():
        assert torch.equal(value, encoders[1][name]), name
    net = torch.nn.Flatten()
    whole = backbones.features(net, np.array(images), 500, "cpu")  # all features at once, as embed did before
    expected = (whole / np.linalg.norm(whole, axis=1, keepdims=True)).astype(np.float32)
    np.testing.assert_array_equal(embed(net, images, 500, torch.device("cpu"), "pixels"), expected)
