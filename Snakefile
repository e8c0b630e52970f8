# ganbench workflow: params.yaml -> data -> (features -> knn) -> train -> sample -> evaluate -> report.
# Rules live in rules/*.smk; every stage is `python -m pipeline.stages.<stage>` (see README.md).
import importlib.util
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")
sys.path.insert(0, workflow.basedir)
from pipeline.config import read_yaml, resolve_workflow
from pipeline.errors import PipelineError

try:  # Snakemake's own reading of a params.yaml it cannot parse (not UTF-8, say) is a traceback
    read_yaml("params.yaml")
except PipelineError as err:
    sys.exit(f"error: {err}")


configfile: "params.yaml"


# A job's `python` is the interpreter running Snakemake when that one has the pipeline's packages (e.g.
# .venv/bin/snakemake with the venv not activated); --use-conda jobs put their env first on PATH.
if importlib.util.find_spec("torch") is not None:
    os.environ.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

# params.yaml merged with --configfile and --config, validated, and written to a file named by its content,
# RESOLVED, which every rule's command passes to its stage ({RESOLVED}: not a rule param, so a change of
# one key reruns only the rules whose settings read it)
try:
    RESOLVED = str(resolve_workflow(config, workflow.config_settings.config, workflow.config_settings.configfiles))
except PipelineError as err:
    sys.exit(f"error: {err}")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/knn.smk"
include: "rules/train.smk"
include: "rules/sample.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# The HTML report (snakemake --report) opens on the study's verdicts, which the report rule writes
report: "results/verdicts.rst" if Path("results/verdicts.rst").exists() else "rules/captions/workflow.rst"


localrules:
    all,
    data,
    real,
    aggregate,
    shared_training,


# The features stage's optional outputs (rules/features.smk) are asked for whenever the stage runs: a
# change of features.extractor or features.hflip adds one, and a new output carries no Snakemake
# record, which would turn off the params check that reruns the stage.
FEATURES_NEEDED = bool(INSTANCE_FEATURES) or ("spaces" in metric_references(config)
                                              and "simclr" in config["evaluate"]["spaces"])


rule all:
    input:
        rules.report.output,
        list(FEATURE_EXTRAS.values()) if FEATURES_NEEDED else [],


refuse_unmade_targets()  # rules/common.smk: after every rule is defined
