# Shared names and helpers for the rules.
from pipeline.catalogue import (METRIC_REFERENCE, NEED_FILES, REAL, has_encoder, launcher, metric_references, monitored,
                                own_trainings, results, run_needs, stage_params, train_resources, trained_as)

METHODS = config["study"]["methods"]
SEEDS = config["train"]["seeds"]
METRICS = config["evaluate"]["metrics"]

SIMCLR_ENCODER = "results/features/encoder.pt"  # the features stage's, when features.extractor is simclr


RUNS = "|".join(config["methods"])  # the trained runs: the keys of methods:
# runs trained by the train rule; the others are trained_as another run and copy its checkpoint (rule
# shared_training; catalogue.trained_as)
OWN_TRAINING = own_trainings(config, list(config["methods"]))
SHARED_TRAINING = [run for run in config["methods"] if run not in OWN_TRAINING]


wildcard_constraints:
    method="|".join([*config["methods"], REAL]),  # a run: a key of methods:, or the real-data run
    metric="|".join([*METRIC_REFERENCE, "probe"]),
    seed=r"\d+",


def method_inputs(wildcards):
    """The kNN-stage files a run's method needs, by option name."""
    return {need: NEED_FILES[need] for need in run_needs(config, wildcards.method)}


def train_options(wildcards, input):
    """The train stage's input options: the method's extra inputs, and the reference with eval_every."""
    return method_options(wildcards, input) + (f" --reference {input.reference}" if monitored(config) else "")


def monitor_inputs(wildcards):
    """The backbone reference, when training scores FD and KID as it goes (train.eval_every)."""
    return {"reference": "results/reference/backbone"} if monitored(config) else {}


def method_options(wildcards, input):
    return " ".join(f"--{need} {input[need]}" for need in run_needs(config, wildcards.method))


def train_settings(wildcards):
    """The settings a run's training reads (pipeline/catalogue.py): editing them reruns it and what follows."""
    return stage_params(config, "train", wildcards.method)


# runs whose method has an encoder (the encoder_probe rule)
ENCODER_RUNS = [run for run in config["methods"] if has_encoder(config, run)]


def reference_inputs(wildcards):
    """The spaces reference's SimCLR encoder (the features stage's), when evaluate.spaces has simclr."""
    return {"encoder": SIMCLR_ENCODER} if wildcards.name == "spaces" and "simclr" in config["evaluate"]["spaces"] else {}


def unmade_targets():
    """Files named on Snakemake's command line that no stage makes and that do not exist (Snakemake
    would stop with a MissingRuleException that lists nothing), read with Snakemake's own parser so
    that what counts as a target is what Snakemake takes for one."""
    program = Path(sys.argv[0])
    if program.name != "snakemake" and program.parts[-2:] != ("snakemake", "__main__.py"):
        return []  # not Snakemake's command line (the API inside another program, a cluster job)
    from snakemake.cli import get_argument_parser

    targets = get_argument_parser().parse_known_args(sys.argv[1:])[0].targets or []
    return [t for t in targets if not workflow.is_rule(t) and not Path(t).exists()
            and not any(r.is_producer(t) for r in workflow.rules)]


def refuse_unmade_targets():
    """Stop with one line naming the first target no stage makes, and the runs and metrics there are."""
    if unmade := unmade_targets():
        sys.exit(f"error: no stage makes {unmade[0]}; a run's metric is results/<run>/<metric>.json with <run> one of "
                 f"{', '.join(METHODS)} (study.methods) and <metric> one of {', '.join(METRICS)} (evaluate.metrics; probe "
                 f"for runs with an encoder) (`snakemake --list-rules` and the README's stage table give the other outputs)")
