# Shared names and helpers for the rules.
from pipeline.methods import ENCODERS, REGISTRY as METHOD_REGISTRY
from pipeline.metrics import REGISTRY as METRIC_REGISTRY

METHODS = config["study"]["methods"]
SEEDS = config["train"]["seeds"]
METRICS = config["evaluate"]["metrics"]
PROBED = [m for m in METHODS if m in ENCODERS]  # their encoders get probe.json (rule encoder_probe)

# Extra inputs of instance-conditioned methods (TrainData fields -> files).
NEEDS = {
    "features": "results/features/features.npy",
    "neighbours": "results/knn/neighbours.parquet",
    "centres": "results/knn/centres.parquet",
}


wildcard_constraints:
    method="|".join(METHOD_REGISTRY),
    metric="|".join([*METRIC_REGISTRY, "probe"]),
    seed=r"\d+",


def method_inputs(wildcards):
    """The kNN-stage files a method needs, by option name."""
    return {need: NEEDS[need] for need in METHOD_REGISTRY[wildcards.method].needs}


def method_options(wildcards, input):
    return " ".join(f"--{need} {input[need]}" for need in METHOD_REGISTRY[wildcards.method].needs)


def train_settings(wildcards):
    """The settings a run depends on: editing them reruns training and what follows."""
    return {"train": config["train"], "method": config["methods"][wildcards.method]}


def metric_reference(wildcards):
    """The results/reference/ folder a metric reads, if any."""
    name = METRIC_REGISTRY[wildcards.metric].reference
    return [f"results/reference/{name}"] if name else []
