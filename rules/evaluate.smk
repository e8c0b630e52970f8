rule reference:
    input:
        unpack(reference_inputs),
        images="data/images.npy",
        labels="data/labels.npy",
    output:
        directory("results/reference/{name}"),
    params:
        settings=lambda w: stage_params(config, f"reference_{w.name}"),
        extra=lambda w, input: f"--encoder {input.encoder}" if "encoder" in input.keys() else "",
    log:
        "logs/reference/{name}.log",
    benchmark:
        "logs/benchmark/reference/{name}.tsv",
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.reference --params {RESOLVED} --name {wildcards.name} --data data --out {output}"
        " {params.extra} > {log} 2>&1"


rule evaluate:
    input:
        references=[f"results/reference/{name}" for name in metric_references(config)],
        samples="results/{method}/seed{seed}/samples.npy",
        meta="results/{method}/seed{seed}/samples.json",
    output:
        # every metric of a run and seed in one job: the samples are embedded once (pipeline/stages/evaluate.py)
        expand("results/{{method}}/seed{{seed}}/{metric}.json", metric=METRICS),
    params:
        settings=stage_params(config, "evaluate"),
        metrics=" ".join(METRICS),
    log:
        "logs/evaluate/{method}_seed{seed}.log",
    benchmark:
        "logs/benchmark/evaluate/{method}_seed{seed}.tsv",
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.evaluate --params {RESOLVED} --metric {params.metrics}"
        " --run results/{wildcards.method}/seed{wildcards.seed} --data data > {log} 2>&1"


rule encoder_probe:
    input:
        checkpoint="results/{method}/seed{seed}/checkpoint.pt",
        images="data/images.npy",
        labels="data/labels.npy",
    output:
        "results/{method}/seed{seed}/probe.json",
    wildcard_constraints:
        method="|".join(ENCODER_RUNS) or "(?!)",  # (?!) matches nothing
    params:
        settings=stage_params(config, "encoder_probe"),
    log:
        "logs/encoder_probe/{method}_seed{seed}.log",
    benchmark:
        "logs/benchmark/encoder_probe/{method}_seed{seed}.tsv",
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    conda:
        "../envs/pipeline-gpu.yaml"
    shell:
        "python -m pipeline.stages.encoder_probe --params {RESOLVED} --method {wildcards.method}"
        " --run results/{wildcards.method}/seed{wildcards.seed} --data data > {log} 2>&1"


rule aggregate:
    input:
        expand("results/{{method}}/seed{seed}/{{metric}}.json", seed=SEEDS),
    output:
        "results/{method}/{metric}.json",
    log:
        "logs/aggregate/{method}_{metric}.log",
    benchmark:
        "logs/benchmark/aggregate/{method}_{metric}.tsv",
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.aggregate {input} --out {output} > {log} 2>&1"
