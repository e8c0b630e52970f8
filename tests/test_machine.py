"""The kind of machine that trained each run: recorded by the trainer, kept across a resume on another
kind, copied to samples.json, and named in the report's provenance; deterministic kernels on CUDA."""
from __future__ import annotations

import os

import torch

from pipeline import checkpoint, context, machine
from pipeline.io import save_json
from pipeline.stages import report, sample
from pipeline.stages.train import run as train_run
from pipeline.trainer import FINAL, PARTIAL

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile

processor\t: 1
model name\t: (the second core is not read)
"""


def test_cpu_line_names_the_model_its_ids_and_the_isa_that_picks_kernels():
    assert machine.cpu_line(CPUINFO) == ("Intel(R) Xeon(R) Platinum 8480+ (cpu family 6, model 143, stepping 8, "
                                         "avx2 avx512f avx512_bf16 amx_bf16)")
    assert machine.cpu_line("model name\t: Old\nflags\t: sse2\n").endswith("(no AVX2)")


def test_describe_names_the_libraries_and_threads():
    line = machine.describe(torch.device("cpu"))
    assert line.startswith("cpu ") and f"torch {torch.__version__}" in line
    assert line.endswith(f"; {torch.get_num_threads()} thread" + ("s" if torch.get_num_threads() != 1 else ""))


def test_a_run_records_every_kind_that_trained_it_and_sample_copies_it(tmp_path, tiny_params, digits_data,
                                                                          monkeypatch):
    out = tmp_path / "run"
    tiny_params["train"].update(steps=4, checkpoint_every=2)
    monkeypatch.setattr(machine, "describe", lambda device: "kind A")
    train_run(tiny_params, "gan", 0, digits_data, out, {})
    assert checkpoint.load(out / FINAL)["machines"] == ["kind A"]

    checkpoint.save(out / PARTIAL, {**checkpoint.load(out / FINAL), "step": 2})  # as if killed, then resumed elsewhere
    monkeypatch.setattr(machine, "describe", lambda device: "kind B")
    trainer = train_run(tiny_params, "gan", 0, digits_data, out, {})
    assert trainer.step == 4 and checkpoint.load(out / FINAL)["machines"] == ["kind A", "kind B"]
    _, _, meta = sample.draw(tiny_params, "gan", out, digits_data, {})
    assert meta["trained_on"] == ["kind A", "kind B"]


def test_report_provenance_counts_the_kinds_and_warns_when_they_differ(tmp_path, tiny_params):
    tiny_params["train"]["seeds"], tiny_params["study"]["methods"] = [0], ["gan", "lsgan", "p2gan", "p2gan_posterior", "real"]
    seeds = dict.fromkeys(["gan", "lsgan", "p2gan", "p2gan_posterior"], [0, 1])  # the results', not train.seeds
    for run in seeds:
        for seed in (0, 1):
            save_json(tmp_path / run / f"seed{seed}" / "samples.json", {"trained_on": ["kind A"]})
    # p2gan_posterior's checkpoints are p2gan's: not trainings of their own
    assert report.trained_on(tiny_params, tmp_path, seeds) == "trained on kind A (6 trainings)"

    save_json(tmp_path / "gan" / "seed1" / "samples.json", {"trained_on": ["kind A", "kind B"]})
    (tmp_path / "lsgan" / "seed1" / "samples.json").unlink()
    line = report.trained_on(tiny_params, tmp_path, seeds)
    assert line.startswith("trained on 3 kinds of machine, so a seed is bitwise repeatable only on its own kind")
    assert line.endswith("(docs/results.md): kind A (4 trainings); kind A + kind B (1 training); not recorded "
                         "(1 training)")


def test_cuda_training_uses_deterministic_kernels(monkeypatch):
    """No GPU here: the CUDA branch is taken with cuda reported available, and nothing touches a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert context.device(threads=1, local_rank=1) == torch.device("cuda", 1)
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
