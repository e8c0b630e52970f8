# Shared names and helpers for the rules.
from pipeline.catalogue import (METRIC_REFERENCE, REAL, has_encoder, launcher, metric_references, monitored, results,
                                run_needs, stage_params, train_resources)

METHODS = config["study"]["methods"]
SEEDS = config["train"]["seeds"]
METRICS = config["evaluate"]["metrics"]

# Extra inputs of instance-conditioned methods (TrainData fields -> files).
SIMCLR_ENCODER = "results/features/encoder.pt"  # the features stage's, when features.extractor is simclr

NEEDS = {
    "features": "results/features/features.npy",
    "neighbours": "results/knn/neighbours.parquet",
    "centres": "results/knn/centres.parquet",
}


RUNS = "|".join(config["methods"])  # the trained runs: the keys of methods:


wildcard_constraints:
    method="|".join([*config["methods"], REAL]),  # a run: a key of methods:, or the real-data run
    metric="|".join([*METRIC_REFERENCE, "probe"]),
    seed=r"\d+",


def method_inputs(wildcards):
    """The kNN-stage files a run's method needs, by option name."""
    return {need: NEEDS[need] for need in run_needs(config, wildcards.method)}


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
