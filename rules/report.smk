rule report:
    input:
        [f"results/{method}/{name}.json" for method in METHODS for name in results(config, method)],
    output:
        table="results/metrics.parquet",
        csv="results/metrics.csv",
        plot="results/plots/metrics.png",
        summary="results/summary.txt",
        comparisons=expand("results/comparisons/{paper}.{ext}", paper=config["comparisons"], ext=["md", "csv"]),
    params:
        config=str(RESOLVED),  # the configuration Snakemake resolved (Snakefile)
        settings=stage_params(config, "report"),
    log:
        "logs/report.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.report --params {params.config} --results results > {log} 2>&1"
