rule sample:
    input:
        unpack(method_inputs),
        checkpoint="results/{method}/seed{seed}/checkpoint.pt",
        images="data/images.npy",
    output:
        samples="results/{method}/seed{seed}/samples.npy",
        conditions="results/{method}/seed{seed}/conditions.npy",
        meta="results/{method}/seed{seed}/samples.json",
        grid=report("results/{method}/seed{seed}/samples.png", caption="captions/samples.rst", category="Samples",
                    subcategory="{method}", labels={"run": "{method}", "seed": "{seed}"}),
    wildcard_constraints:
        method=RUNS,
    params:
        settings=lambda w: stage_params(config, "sample", w.method),
        options=method_options,
    log:
        "logs/sample/{method}_seed{seed}.log",
    benchmark:
        "logs/benchmark/sample/{method}_seed{seed}.tsv",
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    conda:
        "../envs/pipeline-gpu.yaml"
    shell:
        "python -m pipeline.stages.sample --params {RESOLVED} --method {wildcards.method}"
        " --run results/{wildcards.method}/seed{wildcards.seed} --data data {params.options} > {log} 2>&1"


rule real:
    input:
        images="data/images.npy",
        labels="data/labels.npy",
    output:
        samples="results/real/seed{seed}/samples.npy",
        conditions="results/real/seed{seed}/conditions.npy",
        meta="results/real/seed{seed}/samples.json",
        grid=report("results/real/seed{seed}/samples.png", caption="captions/samples.rst", category="Samples",
                    subcategory="real", labels={"run": "real", "seed": "{seed}"}),
    params:
        settings=stage_params(config, "real"),
    log:
        "logs/real/seed{seed}.log",
    benchmark:
        "logs/benchmark/real/seed{seed}.tsv",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.real --params {RESOLVED} --seed {wildcards.seed} --data data"
        " --out results/real/seed{wildcards.seed} > {log} 2>&1"
