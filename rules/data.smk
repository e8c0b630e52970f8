rule data:
    output:
        images="data/images.npy",
        labels="data/labels.npy",
        meta="data/meta.json",
    params:
        config=str(RESOLVED),  # the configuration Snakemake resolved (Snakefile)
        settings=stage_params(config, "data"),
    log:
        "logs/data.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.data --params {params.config} --out data > {log} 2>&1"
