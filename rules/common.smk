# Shared names and helpers for the rules.
from pipeline.catalogue import ENCODERS, METHOD_NEEDS, METRIC_REFERENCE, results

METHODS = config["study"]["methods"]
SEEDS = config["train"]["seeds"]
METRICS = config["evaluate"]["metrics"]

# Extra inputs of instance-conditioned methods (TrainData fields -> files).
NEEDS = {
    "features": "results/features/features.npy",
    "neighbours": "results/knn/neighbours.parquet",
    "centres": "results/knn/centres.parquet",
}


wildcard_constraints:
    method="|".join(METHOD_NEEDS),
    metric="|".join([*METRIC_REFERENCE, "probe"]),
    seed=r"\d+",


def method_inputs(wildcards):
    """The kNN-stage files a method needs, by option name."""
    return {need: NEEDS[need] for need in METHOD_NEEDS[wildcards.method]}


def method_options(wildcards, input):
    return " ".join(f"--{need} {input[need]}" for need in METHOD_NEEDS[wildcards.method])


def train_settings(wildcards):
    """The settings a run depends on: editing them reruns training and what follows."""
    return {"train": config["train"], "method": config["methods"][wildcards.method]}


def metric_reference(wildcards):
    """The results/reference/ folder a metric reads, if any."""
    name = METRIC_REFERENCE[wildcards.metric]
    return [f"results/reference/{name}"] if name else []
