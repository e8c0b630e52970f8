"""What the workflow needs to know of each method and metric, without importing torch.

The Snakefile and dvcgen read this on every parse (each DVC stage and SLURM job parses the
Snakefile again); importing the method and metric registries would cost seconds of torch import
each time. tests/test_catalogue.py checks that it agrees with the registries.
"""
from __future__ import annotations

# the run of held-out real images (pipeline/stages/real.py): listed in study.methods, never under methods:
REAL = "real"
# method -> the extra inputs it trains and samples from (TrainData fields; see rules/common.smk)
METHOD_NEEDS: dict[str, tuple[str, ...]] = {
    "gan": (),
    "lsgan": (),
    "cgan": (),
    "msgan": (),
    "icgan": ("features", "neighbours", "centres"),
    "p2gan": (),
    "bigbigan": (),
}
# method classes with an encoder: the encoder_probe stage scores it
ENCODERS: tuple[str, ...] = ("bigbigan",)
# metric -> the results/reference/ folder it reads, if any
METRIC_REFERENCE: dict[str, str | None] = {
    "fid": "backbone",
    "kid": "backbone",
    "lpips": None,
    "ndb": "ndb",
    "prdc": "backbone",
    "classes": "classifier",
    "inception_score": "classifier",
    "fd_spaces": "spaces",
    "fd_infinity": "backbone",
}


# A run's settings that only choose how its trained networks are sampled: the sample stage reads them,
# training does not (unless it scores samples as it goes, train.eval_every), so changing one resamples
# without retraining (stage_params)
SAMPLING_KEYS = ("sampling",)
# methods.<run>.trained_as: another run whose training this one uses (the two differ in SAMPLING_KEYS
# alone, which pipeline/config.py checks): not a setting, the run's checkpoint is a copy of that run's
TRAINED_AS = "trained_as"

# The params.yaml keys each stage reads, declared once: the Snakemake rules' ``params:`` (which rerun
# a job when a value changes) and dvcgen's DVC ``params:`` both come from here. "{run}" stands for the
# run's name. Thread counts and log/checkpoint intervals are left out: they do not change results
# meant to be compared, so changing them reruns nothing.
STAGE_KEYS: dict[str, list[str]] = {
    "data": ["dataset"],
    "features": ["features"],
    "knn": ["knn"],
    "train": ["train.steps", "train.batch_size", "train.n_dis", "train.z_dim", "train.backbone", "train.width", "train.precision",
              "train.gpus", "train.nodes", "train.eval_every", "train.eval_samples", "methods.{run}"],
    "real": ["sample.n", "sample.grid", "evaluate.n_real"],
    "sample": ["sample"],
    "reference_backbone": ["evaluate.backbone", "evaluate.input_size", "evaluate.resize", "evaluate.n_real",
                           "evaluate.batch_size", "evaluate.metrics"],  # and REAL_TERM_KEYS of the metrics measured
    "reference_ndb": ["evaluate.ndb_bins", "evaluate.ndb_n_train", "evaluate.ndb_whiten"],
    "reference_spaces": ["evaluate.spaces", "evaluate.spaces_input_size", "evaluate.resize", "evaluate.n_real",
                         "evaluate.batch_size"],
    "reference_classifier": ["evaluate.classifier_steps", "evaluate.classifier_batch_size",
                             "evaluate.classifier_holdout", "evaluate.batch_size"],
    "evaluate": ["evaluate.metrics", "evaluate.n_fake"],  # and METRIC_KEYS of the metrics measured
    "encoder_probe": ["features.probe", "features.seed", "features.batch_size"],
    "report": ["comparisons", "study.methods", "evaluate.metrics", "methods", "train.seeds"],
}

# what the backbone reference precomputes of the real rows for a metric measured (pipeline/stages/reference.py)
REAL_TERM_KEYS: dict[str, list[str]] = {"kid": ["evaluate.n_fake", "evaluate.kid_subsets", "evaluate.kid_subset_size"],
                                        "prdc": ["evaluate.prdc_k"]}

# the evaluate.* keys each metric reads when it scores samples
BACKBONE_KEYS = ["evaluate.backbone", "evaluate.input_size", "evaluate.resize", "evaluate.batch_size"]
METRIC_KEYS: dict[str, list[str]] = {
    "fid": BACKBONE_KEYS,
    "kid": [*BACKBONE_KEYS, "evaluate.kid_subsets", "evaluate.kid_subset_size"],
    "lpips": ["evaluate.batch_size", "evaluate.lpips_net", "evaluate.lpips_input_size", "evaluate.lpips_pairs",
              "evaluate.lpips_conditions", "evaluate.lpips_pairs_per_condition"],
    "ndb": ["evaluate.ndb_alpha", "evaluate.ndb_bins", "evaluate.ndb_whiten"],
    "prdc": [*BACKBONE_KEYS, "evaluate.prdc_k"],
    "classes": ["evaluate.batch_size"],
    "inception_score": ["evaluate.batch_size", "evaluate.is_splits", "evaluate.is_net", "evaluate.resize"],
    "fd_spaces": [*BACKBONE_KEYS, "evaluate.spaces", "evaluate.spaces_input_size"],
    "fd_infinity": [*BACKBONE_KEYS, "evaluate.fd_infinity_points", "evaluate.fd_infinity_min_n"],
}


def stage_keys(stage: str, run: str | None = None, metrics: list[str] = (), monitored: bool = False) -> list[str]:
    """The params.yaml keys ``stage`` reads, "{run}" filled in with ``run`` (or left for dvcgen);
    for evaluate, with the keys of ``metrics``, and for the backbone reference, with those of the real
    terms it computes for them; for a train stage that scores FD and KID during training
    (``monitored``: train.eval_every > 0, pipeline/monitor.py), with theirs."""
    keys = [k.replace("{run}", run) if run else k for k in STAGE_KEYS[stage]]
    if stage == "evaluate":
        keys += [k for m in metrics for k in METRIC_KEYS[m]]
    if stage == "reference_backbone":
        keys += [k for m in metrics for k in REAL_TERM_KEYS.get(m, [])]
    if stage == "train" and monitored:
        keys += METRIC_KEYS["kid"]
    return list(dict.fromkeys(keys))


def metric_reference(params: dict, metric: str) -> str | None:
    """The results/reference/ folder ``metric`` reads under ``params``: the Inception Score from the
    Inception network's logits (``evaluate.is_net: inception``) reads none, not the classifier."""
    if metric == "inception_score" and params["evaluate"]["is_net"] == "inception":
        return None
    return METRIC_REFERENCE[metric]


def metric_references(params: dict) -> list[str]:
    """The results/reference/ folders the configured metrics (and FD during training) read."""
    needed = {metric_reference(params, m) for m in params["evaluate"]["metrics"]}
    return sorted((needed | ({"backbone"} if monitored(params) else set())) - {None})


def monitored(params: dict) -> bool:
    """Whether training scores FD and KID as it goes (it then reads the backbone reference)."""
    return params["train"]["eval_every"] > 0


def stage_params(params: dict, stage: str, run: str | None = None) -> dict:
    """key -> value of the keys ``stage`` reads: what a Snakemake rule's ``params:`` holds. A run's
    ``SAMPLING_KEYS`` are its sample stage's, and its training's only with train.eval_every
    (``logged_settings``)."""
    out = {}
    for key in stage_keys(stage, run, params["evaluate"]["metrics"], monitored(params)):
        value = params
        for part in key.split("."):
            value = value[part]
        out[key] = value
    if run is not None and run != REAL:
        hp = params["methods"][run]
        if stage == "train":
            out[f"methods.{run}"] = logged_settings(params, run)
        if stage == "sample":
            out.update({f"methods.{run}.{k}": hp[k] for k in SAMPLING_KEYS if k in hp})
    return out


# Keys a reference reads that an evaluation may still differ in: the batch size (rounding only), the
# metric list and what the real terms were computed with (checked per term: EvalContext.real_terms).
REFERENCE_FREE = ("evaluate.batch_size", "evaluate.metrics", "evaluate.n_fake", "evaluate.kid_subsets",
                  "evaluate.kid_subset_size", "evaluate.prdc_k")


def reference_settings(params: dict, name: str) -> dict:
    """What reference ``name``'s values depend on: recorded in its reference.json when it is built,
    compared by every evaluation that reads it."""
    return {"dataset": params["dataset"]["name"],
            **{k: v for k, v in stage_params(params, f"reference_{name}").items() if k not in REFERENCE_FREE}}


# The files of the extra inputs that instance-conditioned methods need (TrainData fields -> files)
NEED_FILES = {
    "features": "results/features/features.npy",
    "neighbours": "results/knn/neighbours.parquet",
    "centres": "results/knn/centres.parquet",
}


def run_needs(params: dict, run: str) -> tuple[str, ...]:
    """The extra inputs of a run (a key of params' ``methods:``), from its method class."""
    return () if run == REAL else METHOD_NEEDS[params["methods"][run]["method"]]


def has_encoder(params: dict, run: str) -> bool:
    return run != REAL and params["methods"][run]["method"] in ENCODERS


def trained_runs(params: dict) -> list[str]:
    """The runs of study.methods that are trained (all but the real-data run)."""
    return [r for r in params["study"]["methods"] if r != REAL]


def training_settings(hp: dict) -> dict:
    """The settings of a run (its entry under methods:) that its trained weights depend on: all but the
    ``SAMPLING_KEYS`` and ``TRAINED_AS``."""
    return {k: v for k, v in hp.items() if k not in (*SAMPLING_KEYS, TRAINED_AS)}


def logged_settings(params: dict, run: str) -> dict:
    """The settings of methods.<run> that its train stage's outputs depend on: the weights' and, when
    training scores samples as it goes (train.eval_every, in train_log.csv), the sampling keys too."""
    hp = params["methods"][run]
    return {k: v for k, v in hp.items() if k != TRAINED_AS} if monitored(params) else training_settings(hp)


def trained_as(params: dict, run: str) -> str:
    """The run whose training ``run`` uses: its ``trained_as``, else itself. Equal settings and seed train
    equal weights (a method's random streams depend on the seed alone, pipeline/streams.py), so
    p2gan_posterior, p2gan sampled from real images' posteriors, is trained once, as p2gan."""
    return params["methods"][run].get(TRAINED_AS, run)


def own_trainings(params: dict, runs: list[str]) -> list[str]:
    """Those of ``runs`` that train themselves: none of them is ``trained_as`` another run."""
    return [run for run in runs if trained_as(params, run) == run]


def shared_trainings(params: dict, runs: list[str]) -> dict[str, list[str]]:
    """Run -> those of ``runs`` trained as it (``trained_as``), for each run that has some."""
    out: dict[str, list[str]] = {}
    for run in runs:
        if (owner := trained_as(params, run)) != run:
            out.setdefault(owner, []).append(run)
    return out


def results(params: dict, run: str) -> list[str]:
    """The aggregated results/<run>/<name>.json the report reads: the metrics, and probe for encoders."""
    return [*params["evaluate"]["metrics"], *(["probe"] if has_encoder(params, run) else [])]


def train_resources(train: dict) -> dict:
    """SLURM resources of one training job: train.gpus GPUs and 4 CPUs per GPU on each of train.nodes nodes."""
    gpus, nodes = train["gpus"], train["nodes"]
    if nodes == 1:
        return {"gpu": gpus, "cpus_per_task": 4 * gpus}
    # several nodes: SLURM's default of one task per node, holding the node's GPUs (gres counts per
    # node; the plugin's gpu resource, --gpus, per job)
    return {"nodes": nodes, "gres": f"gpu:{gpus}", "cpus_per_task": 4 * gpus}


def launcher(train: dict) -> str:
    """The command prefix that starts the train stage with train.gpus x train.nodes processes (torchrun
    through pipeline/launch.py, which ends a failed run on its cause's one line)."""
    gpus, nodes = train["gpus"], train["nodes"]
    if gpus * nodes == 1:
        return "python"
    if nodes == 1:
        return f"python -m pipeline.launch --standalone --nnodes 1 --nproc-per-node {gpus}"
    # one torchrun per node of the SLURM allocation, meeting at the first node
    return (f"srun --nodes {nodes} --ntasks-per-node 1 python -m pipeline.launch --nnodes {nodes} --nproc-per-node {gpus} "
            f"--rdzv-backend c10d --rdzv-id $SLURM_JOB_ID "
            f"--rdzv-endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500")
