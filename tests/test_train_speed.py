"""The training benchmarks (train_speed.py, conv_layers.py, bit_sources.py) run end to end on the tiny
study (their timings are not checked: they are measurements, not test outcomes)."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess

import pytest
import torch
import torch.nn.functional as F

from benchmarks.conv_layers import subpixel_transposed
from conftest import PYTHON, ROOT, copy_repo, write_params


def speed(tmp_path, tiny_params, digits_data, *options: str) -> str:
    params = write_params(tiny_params, tmp_path / "params.yaml")
    return subprocess.run([PYTHON, "benchmarks/train_speed.py", "--params", str(params), "--data", str(digits_data),
                           "--methods", "gan", "cgan", "--steps", "2", "--repeats", "1", *options],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_the_grid_gives_each_run_a_rate_ratio_and_efficiency_per_precision_and_batch(tmp_path, tiny_params, digits_data):
    out = speed(tmp_path, tiny_params, digits_data, "--grid", "--precisions", "fp32", "--batch-sizes", "8", "16")
    assert re.search(r"fp32 b8\s+fp32 b16", out)
    for run in ("gan", "cgan"):
        assert re.search(rf"^{run}\s+\d+ x1\.00 e\d\.\d\d\s+\d+ x\d+\.\d\d e\d\.\d\d$", out, flags=re.M), out


def test_the_default_table_reports_the_precision_it_trains_at(tmp_path, tiny_params, digits_data):
    out = speed(tmp_path, tiny_params, digits_data, "--precision", "fp32")
    assert "precision fp32: fp32 matmul" in out and re.search(r"^cgan\s+\d+\s+\d+", out, flags=re.M), out


def test_the_ensemble_benchmark_times_a_loop_and_vmap_over_the_same_models(tmp_path, tiny_params):
    params = write_params(tiny_params, tmp_path / "params.yaml")
    out = subprocess.run([PYTHON, "benchmarks/ensemble_speed.py", "--params", str(params), "--models", "2",
                          "--repeats", "1"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in ("loop", "vmap"):
        assert re.search(rf"^{name}\s+\d+\.\d ms\s+\d+ img/s$", out, flags=re.M), out
    found = re.search(r"^vmap / loop: x\d+\.\d\d; largest gradient difference (\S+)$", out, flags=re.M)
    assert found and float(found.group(1)) < 1e-4, out  # both variants compute the same gradients


def test_conv_layers_times_each_dcgan_layer_against_a_matmul_form_of_the_same_result(tmp_path, default_params):
    """Each matmul form computes what oneDNN computes: its largest difference is float rounding."""
    params = write_params(default_params, tmp_path / "params.yaml")
    out = subprocess.run([PYTHON, str(ROOT / "benchmarks" / "conv_layers.py"), "--params", str(params), "--repeats", "1",
                          "--batch-size", "4"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines()[2:]]
    assert [r[0].strip().split(" px")[0] for r in rows] == [
        "G 64->64 1->4", "G 64->32 4->8", "G 32->16 8->16", "G 16->1 16->32",
        "D 1->16 32->16", "D 16->32 16->8", "D 32->64 8->4"]
    assert all(float(r[4]) < 1e-5 for r in rows), out


@pytest.mark.parametrize("channels", [1, 3])
def test_the_sub_pixel_form_is_the_transposed_convolution(channels):
    x, w, b = torch.randn(2, 5, 6, 7), torch.randn(5, channels, 4, 4), torch.randn(channels)
    torch.testing.assert_close(subpixel_transposed(x, w, b), F.conv_transpose2d(x, w, b, 2, 1), rtol=1e-5, atol=1e-5)


def test_conv_layers_variants_time_each_form_of_gs_output_layer(tmp_path, default_params):
    params = write_params(default_params, tmp_path / "params.yaml")
    out = subprocess.run([PYTHON, str(ROOT / "benchmarks" / "conv_layers.py"), "--params", str(params), "--repeats", "1",
                          "--batch-size", "4", "--variants"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.split("G's output layer 16->1")[1].splitlines()[3:]]
    assert [r[0].strip() for r in rows] == ["oneDNN", "2 output channels", "4 output channels", "16 output channels",
                                            "channels-last", "sub-pixel"], out
    assert rows[0][3].strip() == "True" and rows[0][4].strip() == "True, True, True", out  # oneDNN against itself


def test_bit_sources_hashes_each_setting_records_them_and_compares_records(tmp_path, tiny_params, digits_data):
    params = write_params(tiny_params, tmp_path / "params.yaml")
    record = tmp_path / "bits.json"
    out = subprocess.run([PYTHON, "benchmarks/bit_sources.py", "--params", str(params), "--data", str(digits_data),
                          "--methods", "gan", "--steps", "2", "--record", str(record)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 10 and rows[0][0].strip() == "(none)" and rows[0][2].strip() == "same"
    assert rows[-1][0].strip() == "ONEDNN_MAX_CPU_ISA=AVX2 MKL_CBWR=COMPATIBLE"
    spec = importlib.util.spec_from_file_location("bit_sources", ROOT / "benchmarks" / "bit_sources.py")
    bit_sources = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bit_sources)
    threads = torch.get_num_threads()
    try:
        here = bit_sources.weights_hash("gan", 2, params, digits_data)  # the same bits here
    finally:
        torch.set_num_threads(threads)
    rec = json.loads(record.read_text())
    assert rec["hashes"]["(none)"]["gan"] == here and rows[0][1].strip() == here[:8]
    assert rec["steps"] == 2 and rec["machine"].startswith("cpu ") and rec["data"]

    loaded = bit_sources.load_record(record, 2, rec)
    cells, agreeing = bit_sources.compare(loaded["hashes"], loaded, ["gan"])
    assert len(cells) == 10 and len(agreeing) == 10
    other = {**rec["hashes"], "(none)": {"gan": "0" * 16}}  # another machine, other bits without a setting
    cells, agreeing = bit_sources.compare(other, rec, ["gan"])
    assert cells[0] == "| (none) | DIFFERENT | 0 of 1 |" and "(none)" not in agreeing and len(agreeing) == 9
    for change, message in (({"steps": 3}, "hashed 3 steps"), ({"settings_sha256": "x"}, "other train: or methods:"),
                            ({"data": {}}, "other data"), ({"format": 0}, "not a bit_sources record")):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**rec, **change}))
        with pytest.raises(SystemExit, match=message):
            bit_sources.load_record(bad, 2, rec)


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_trains_each_run_twice_to_the_same_bits_and_times_it(tmp_path, tiny_params):
    """On this CPU: the check's own logic (the data, icgan's stand-in inputs, the repeat, the speed tables)."""
    params = write_params(tiny_params, tmp_path / "params.yaml")
    proc = subprocess.run([PYTHON, "benchmarks/gpu_check.py", "--params", str(params), "--methods", "gan", "icgan",
                           "--steps", "4", "--speed-steps", "2", "--out", str(tmp_path / "check")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "check" / "gpu_check.md").read_text()
    for run in ("gan", "icgan"):
        assert re.search(rf"^\| {run} \| [\d.]+ \| same bits \| ok \|$", report, flags=re.M), report
        assert re.search(rf"^{run}\s+\d+\s+\d+", report, flags=re.M), report  # its train_speed rows
    assert "train_speed.py --precision fp32:" in report and "NCCL and SyncBatchNorm: not checked" in report


def test_gpu_check_fails_on_a_run_that_fails_or_repeats_other_bits(tmp_path, tiny_params, monkeypatch):
    gpu_check = load_gpu_check()
    params = write_params(tiny_params, tmp_path / "params.yaml")
    # a CUDA error's last line is only a hint: the report keeps the tail of the error output
    stderr = "\n".join([f"line {i}" for i in range(40)] + ["RuntimeError: CUDA error: device-side assert triggered",
                                                          "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."])
    error = gpu_check.failure(subprocess.CompletedProcess([], 1, "", stderr))
    assert error.splitlines()[0] == "exit 1:" and len(error.splitlines()) == 1 + gpu_check.TAIL and "line 12" in error
    assert "CUDA error: device-side assert" in error and "line 11" not in error
    monkeypatch.setattr(gpu_check, "train", lambda *a: (1.0, error))
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--params", str(params), "--methods", "gan", "--steps", "2", "--speed-steps", "1",
                        "--out", str(tmp_path / "check")])
    assert stop.value.code == 1
    report = (tmp_path / "check" / "gpu_check.md").read_text()
    assert "| gan | 1.0 | not run | failed (below) |" in report and f"gan: {error}" in report
    monkeypatch.setattr(gpu_check, "train", lambda *a: (1.0, ""))
    monkeypatch.setattr(gpu_check, "same_weights", lambda a, b: False)  # a nondeterministic kernel
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--params", str(params), "--methods", "gan", "--steps", "2", "--speed-steps", "1",
                        "--out", str(tmp_path / "check")])
    assert stop.value.code == 1
    assert "| gan | 1.0 | DIFFERENT | ok |" in (tmp_path / "check" / "gpu_check.md").read_text()
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--params", str(params), "--methods", "nope", "--out", str(tmp_path / "check")])
    assert stop.value.code == 2


def test_the_gpu_check_script_has_help_and_names_its_missing_wheels(tmp_path):
    helptext = subprocess.run(["bash", "scripts/gpu_check.sh", "--help"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    assert "--prepare" in helptext and "GPU_PYTHON" in helptext and "benchmarks/gpu_check.py --help" in helptext
    bare = copy_repo(tmp_path / "repo")  # a checkout without .gpucheck/
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=bare, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        "error: no .gpucheck/: run 'bash scripts/gpu_check.sh --prepare' where pip reaches PyPI")
