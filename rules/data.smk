rule data:
    output:
        images="data/images.npy",
        labels="data/labels.npy",
        meta="data/meta.json",
    params:
        settings=stage_params(config, "data"),
    log:
        "logs/data.log",
    benchmark:
        "logs/benchmark/data.tsv",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.data --params {RESOLVED} --out data > {log} 2>&1"
