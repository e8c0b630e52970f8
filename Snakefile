# ganbench workflow: params.yaml -> data -> (features -> knn) -> train -> sample -> evaluate -> report.
# Rules live in rules/*.smk; every stage is `python -m pipeline.<stage>` (see README.md).
import sys

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


sys.path.insert(0, workflow.basedir)
from pipeline.config import RESOLVED, resolve_workflow
from pipeline.errors import PipelineError

# params.yaml merged with --configfile and --config, validated, and written to RESOLVED for the stages
try:
    resolve_workflow(config, workflow.config_settings.config, workflow.config_settings.configfiles)
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


localrules:
    all,
    data,
    real,
    aggregate,


rule all:
    input:
        rules.report.output,
