rule train:
    input:
        unpack(method_inputs),
        images="data/images.npy",
        labels="data/labels.npy",
        meta="data/meta.json",
    output:
        checkpoint="results/{method}/seed{seed}/checkpoint.pt",
        log_csv="results/{method}/seed{seed}/train_log.csv",
    wildcard_constraints:
        method=RUNS,
    params:
        config=str(RESOLVED),  # the configuration Snakemake resolved (Snakefile)
        settings=train_settings,
        options=method_options,
    log:
        "logs/train/{method}_seed{seed}.log",
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    conda:
        "../envs/pipeline-gpu.yaml"
    shell:
        "python -m pipeline.train --params {params.config} --method {wildcards.method} --seed {wildcards.seed}"
        " --data data --out results/{wildcards.method}/seed{wildcards.seed} {params.options} > {log} 2>&1"
