TRAINED = [run for run in METHODS if run != REAL]
PAPERS = list(config["comparisons"])
INSTANCE_FEATURES = (["results/features/probe.json", "results/knn/knn.json"]
                     if any("neighbours" in run_needs(config, run) for run in TRAINED) else [])


rule report:
    input:
        results=[f"results/{method}/{name}.json" for method in METHODS for name in results(config, method)],
        grids=[f"results/{method}/seed{SEEDS[0]}/samples.png" for method in METHODS],
        logs=[f"results/{run}/seed{seed}/train_log.csv" for run in TRAINED for seed in SEEDS],
        trained_on=[f"results/{run}/seed{seed}/samples.json" for run in TRAINED for seed in SEEDS],  # the provenance's machines
        samples=[f"results/{run}/seed{SEEDS[0]}/samples.npy" for run in TRAINED],  # beside their nearest
        images="data/images.npy",  # training images (plots/nearest_<run>.png)
        instance_features=INSTANCE_FEATURES,  # instance-conditioned methods' pages say how semantic they are
    output:
        table="results/metrics.parquet",
        csv="results/metrics.csv",
        plot=report("results/plots/metrics.png", caption="captions/overview.rst", category="Overview"),
        summary=report("results/summary.txt", caption="captions/summary.rst", category="Overview"),
        verdicts="results/verdicts.rst",  # the report's first screen (Snakefile: report:)
        dvc_metrics="results/metrics.json",  # DVC's metrics: run means of values and claimed columns
        pages=[report(f"results/comparisons/{paper}.md", caption="captions/page.rst", category="Comparisons",
                      subcategory=paper) for paper in PAPERS],
        claims=[report(f"results/comparisons/{paper}.csv", caption="captions/claims.rst", category="Comparisons",
                       subcategory=paper) for paper in PAPERS],
        figures=[report(f"results/plots/{paper}.png", caption="captions/comparison.rst", category="Comparisons",
                        subcategory=paper) for paper in PAPERS],
        curves=[report(f"results/plots/curves_{run}.png", caption="captions/curves.rst", category="Training curves",
                       subcategory=run) for run in TRAINED],
        nearest=[report(f"results/plots/nearest_{run}.png", caption="captions/nearest.rst",
                        category="Nearest training images", subcategory=run) for run in TRAINED],
    params:
        settings=stage_params(config, "report"),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmark/report.tsv",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.report --params {RESOLVED} --results results --data data > {log} 2>&1"
