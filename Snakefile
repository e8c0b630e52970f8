# ganbench workflow: params.yaml -> data -> (features -> knn) -> train -> sample -> evaluate -> report.
# Rules live in rules/*.smk; every stage is `python -m pipeline.<stage>` (see README.md).
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


sys.path.insert(0, workflow.basedir)
from pipeline.config import resolve_workflow
from pipeline.errors import PipelineError

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


rule all:
    input:
        rules.report.output,


def unmade_targets():
    """Files named on Snakemake's command line that no rule makes and that do not exist: Snakemake
    would stop with a MissingRuleException that lists nothing. Read with Snakemake's own parser, so
    what counts as a target is what Snakemake takes for one."""
    if Path(sys.argv[0]).name not in ("snakemake", "__main__.py"):
        return []  # not the command line (the API, or a job of a cluster executor)
    from snakemake.cli import get_argument_parser

    targets = get_argument_parser().parse_known_args(sys.argv[1:])[0].targets or []
    return [t for t in targets if not workflow.is_rule(t) and not Path(t).exists()
            and not any(r.is_producer(t) for r in workflow.rules)]


if unmade := unmade_targets():
    sys.exit(f"error: no stage makes {unmade[0]}; a run's metric is results/<run>/<metric>.json with <run> one of "
             f"{', '.join(METHODS)} (study.methods) and <metric> one of {', '.join(METRICS)} (evaluate.metrics; probe "
             f"for runs with an encoder) "
             f"(`snakemake --list-rules` and the README's stage table give the other outputs)")
