rule train:
    input:
        unpack(method_inputs),
        unpack(monitor_inputs),
        images="data/images.npy",
        labels="data/labels.npy",
        meta="data/meta.json",
    output:
        checkpoint="results/{method}/seed{seed}/checkpoint.pt",
        log_csv="results/{method}/seed{seed}/train_log.csv",
    wildcard_constraints:
        method="|".join(OWN_TRAINING),
    params:
        settings=train_settings,
        options=train_options,
        launch=launcher(config["train"]),  # python, or torchrun with train.gpus x train.nodes processes
    log:
        "logs/train/{method}_seed{seed}.log",
    benchmark:
        "logs/benchmark/train/{method}_seed{seed}.tsv",
    threads: config["train"]["threads"] * config["train"]["gpus"]  # one process per GPU (gloo on CPU)
    resources:
        mem_mb=8000 * config["train"]["gpus"],
        runtime=240,
        **train_resources(config["train"]),
    conda:
        "../envs/pipeline-gpu.yaml"
    shell:
        "{params.launch} -m pipeline.stages.train --params {RESOLVED} --method {wildcards.method} --seed {wildcards.seed}"
        " --data data --out results/{wildcards.method}/seed{wildcards.seed} {params.options} > {log} 2>&1"


rule shared_training:
    input:
        checkpoint=lambda w: f"results/{trained_as(config, w.method)}/seed{w.seed}/checkpoint.pt",
        log_csv=lambda w: f"results/{trained_as(config, w.method)}/seed{w.seed}/train_log.csv",
    output:
        checkpoint="results/{method}/seed{seed}/checkpoint.pt",
        log_csv="results/{method}/seed{seed}/train_log.csv",
    wildcard_constraints:
        method="|".join(SHARED_TRAINING) or "(?!)",  # (?!) matches nothing
    params:
        settings=train_settings,
        trained_as=lambda w: trained_as(config, w.method),
    log:
        "logs/shared_training/{method}_seed{seed}.log",
    benchmark:
        "logs/benchmark/shared_training/{method}_seed{seed}.tsv",
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "(cp {input.checkpoint} {output.checkpoint} && cp {input.log_csv} {output.log_csv}"
        " && echo 'shared_training: {wildcards.method} seed {wildcards.seed} is {params.trained_as} seed {wildcards.seed}'"
        ") > {log} 2>&1"
