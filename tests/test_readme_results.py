"""scripts/readme_results.py: the README's results section is written from a study's outputs, every
number as the report computed it, and nothing outside the markers changes."""
from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from conftest import ROOT, write_params
from pipeline.stages import report
from test_metrics import fake_results

spec = importlib.util.spec_from_file_location("readme_results", ROOT / "scripts" / "readme_results.py")
readme_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_results)


@pytest.fixture
def study(tmp_path, tiny_params):
    tiny_params["study"]["methods"] = ["cgan", "msgan", "real"]
    tiny_params["evaluate"]["metrics"] = ["fid", "ndb"]
    write_params(tiny_params, tmp_path / "params.yaml")
    results = tmp_path / "results"
    fake_results(results, {"cgan": {0: 40.0, 1: 41.0, 2: 42.0}, "msgan": {0: 30.0, 1: 31.0, 2: 30.5},
                           "real": {0: 0.4, 1: 0.5, 2: 0.45}})
    report.main(["--params", str(tmp_path / "params.yaml"), "--results", str(results)])
    return results


def test_the_section_is_written_between_the_markers_from_the_reports_tables(study, tmp_path, monkeypatch):
    monkeypatch.setattr(readme_results, "img_per_s", lambda where: "1234")
    readme, details = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(f"# title\nbefore\n{readme_results.BEGIN}\nold text 99.9\n{readme_results.END}\nafter\n")
    details.write_text(f"# details\n{readme_results.BEGIN}\n{readme_results.END}\nend\n")
    stability = tmp_path / "stability.md"
    stability.write_text("Verdict stability: commit abc1234, 2026-12-06, 3 seeds per set; wall time 1 min\n\n"
                         "| paper | claim | role | seeds 0-2 | seeds 100-102 | relation | 0-2 - 100-102 |\n"
                         "| --- | --- | --- | --- | --- | --- | --- |\n"
                         "| msgan | ndb lower than cgan | primary | a | b | agree | 1 (p 0.5) |\n"
                         "| msgan | fid lower than cgan | secondary | a | b | differ | 2 (p 0.04) |\n"
                         "| icgan | fid lower than biggan | primary | a | b | power 0.15 | 3 (p 0.2) |\n\n"
                         "The two sets' differences lie apart beyond chance (p < 0.05, last column) for 1 of 3 claims; "
                         "0.1 would by chance alone.\n")
    tuning = tmp_path / "p2gan.md"
    tuning.write_text("Tuning of comparison p2gan\n\n| side | run | shared | own | seed 200 | mean | chosen |\n"
                      "| method (msgan) | tune_msgan_0 | {ema: 0.0} | {w_ms: 1.0} | 20 | 20 |  |\n"
                      "| method (msgan) | tune_msgan_1 | {ema: 0.0} | {w_ms: 2.0} | 10 | 10 | yes |\n"
                      "| baseline (cgan) | tune_cgan_0 | {ema: 0.0} | {lr_g: 0.0002} | 10 | 10 | yes |\n"
                      "- method msgan: change {w_ms: 2.0} in params.yaml\n")
    readme_results.main(["--results", str(study), "--readme", str(readme), "--details", str(details),
                         "--stability", str(stability), "--tuning", str(tuning)])
    text = readme.read_text()
    assert text.startswith("# title\nbefore\n") and text.endswith(f"{readme_results.END}\nafter\n")
    assert "old text 99.9" not in text and "1234 img/s" in text and "seeds 0, 1, 2" in text
    ndb = pd.read_csv(study / "comparisons" / "msgan.csv").set_index("metric").loc["ndb"]
    row = next(line for line in text.splitlines() if line.startswith("| msgan | ndb lower | primary"))
    assert f"{ndb['difference']:.4g} [{ndb['ci_low']:.4g}, {ndb['ci_high']:.4g}] paired" in row
    assert "**supported" in row and f"{ndb['detectable']:.4g}" in row
    assert "held-out real images scored as samples: FD_efficientnet_lite0 0.45 ± 0.05" in text
    assert "; commit " in text and "configuration sha256" in text  # the report's provenance line
    # the README says how the primaries fared on the second seed set; the tables go to the details page
    assert ("On a second, disjoint set of seeds (commit abc1234, 2026-12-06, 3 seeds per set), 1 of 2 primary "
            "verdicts agree; not: icgan fid lower than biggan (power 0.15).") in text
    assert "| seeds 0-2 |" not in text and "Tuning of comparison" not in text
    page = details.read_text()
    assert page.startswith("# details\n") and page.endswith(f"{readme_results.END}\nend\n")
    assert "| msgan | ndb lower than cgan | primary | a | b | agree |" in page
    assert page.index("| seeds 0-2 |") < page.index("Tuning of comparison p2gan\n\n| side | run |")
    assert "change {w_ms" not in page  # the tuner's advice, stale once followed, is left out; the state is said
    assert "- msgan: the study's params.yaml differs from the choice {ema: 0.0, w_ms: 2.0}: it holds" in page
    assert "- cgan: the study's params.yaml holds the choice {ema: 0.0, lr_g: 0.0002}" in page


def test_the_study_time_comes_from_its_snakemake_log_and_benchmark_files(tmp_path):
    assert "not recorded" in readme_results.study_time(tmp_path)
    log = tmp_path / ".snakemake" / "log"
    log.mkdir(parents=True)
    (log / "2026-12-06T135030.snakemake.log").write_text(
        "Provided cores: 2\n[Sun Dec  6 13:50:30 2026]\nrule train:\n    jobid: 1\n[Sun Dec  6 13:52:10 2026]\n"
        "rule evaluate:\n    jobid: 2\n[Sun Dec  6 13:52:40 2026]\nFinished jobid: 1 (Rule: train)\n"
        "[Sun Dec  6 13:53:30 2026]\nFinished jobid: 2 (Rule: evaluate)\n")
    for rule, job, seconds in (("train", "gan_seed0", 130.0), ("train", "gan_seed1", 70.0), ("evaluate", "gan_seed0", 50.0)):
        (tmp_path / "logs" / "benchmark" / rule).mkdir(parents=True, exist_ok=True)
        (tmp_path / "logs" / "benchmark" / rule / f"{job}.tsv").write_text(f"s\tmax_rss\n{seconds}\t100\n")
    assert readme_results.study_time(tmp_path) == ("Its last Snakemake invocation ran 2 jobs in 3.0 min on 2 cores; "
                                                   "job-seconds: train 200, evaluate 50 (25% of training), all rules 250.")
    for run in ("gan/seed0", "gan/seed1", "gan/seed2"):  # a third training, not timed: a study updated in parts
        (tmp_path / "results" / run).mkdir(parents=True)
        (tmp_path / "results" / run / "checkpoint.pt").write_bytes(b"")
    assert readme_results.study_time(tmp_path).endswith(
        "the benchmark files time 2 of the 3 trainings it holds (the study was updated in parts, not run whole).")
    (tmp_path / "logs" / "benchmark" / "shared_training").mkdir()  # the third a copy of another run's training
    (tmp_path / "logs" / "benchmark" / "shared_training" / "gan_seed2.tsv").write_text("s\tmax_rss\n0.01\t10\n")
    assert readme_results.study_time(tmp_path).endswith("train 200, evaluate 50 (25% of training), all rules 250.")


def test_a_readme_without_markers_is_refused(study, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="needs one"):
        readme_results.main(["--results", str(study), "--readme", str(readme)])
    assert readme.read_text() == "# no markers\n"


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_the_readme_and_its_results_page_have_one_generated_section(page):
    text = (ROOT / page).read_text()
    assert text.count(readme_results.BEGIN) == 1 and text.count(readme_results.END) == 1
