# Outputs that exist only for some settings: the SimCLR encoder, and features of flipped images.
FEATURE_EXTRAS = {
    **({"encoder": SIMCLR_ENCODER} if config["features"]["extractor"] == "simclr" else {}),
    **({"flipped": "results/features/features_flip.npy"} if config["features"]["hflip"] else {}),
}


rule features:
    input:
        images="data/images.npy",
        labels="data/labels.npy",
    output:
        features="results/features/features.npy",
        probe="results/features/probe.json",
        **FEATURE_EXTRAS,
    params:
        settings=stage_params(config, "features"),
    log:
        "logs/features.log",
    benchmark:
        "logs/benchmark/features.tsv",
    threads: config["train"]["threads"]
    priority: 10  # before the trainings: icgan's training waits on it (the study's critical path)
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1,
    conda:
        "../envs/pipeline-gpu.yaml"
    shell:
        "python -m pipeline.stages.features --params {RESOLVED} --data data --out results/features > {log} 2>&1"
