rule knn:
    input:
        # data/images.npy (read for knn.pixel_queries' pixel baseline) is not listed: features.npy is made
        # from it, so a change of the images reaches this rule through the features
        features="results/features/features.npy",
        labels="data/labels.npy",
    output:
        neighbours="results/knn/neighbours.parquet",
        centres="results/knn/centres.parquet",
        report="results/knn/knn.json",
    params:
        settings=stage_params(config, "knn"),
    log:
        "logs/knn.log",
    benchmark:
        "logs/benchmark/knn.tsv",
    threads: config["train"]["threads"]
    priority: 10  # before the trainings: icgan's training waits on it (the study's critical path)
    resources:
        mem_mb=8000,  # about 2 N D float32 bytes plus the batch's k + 1 results: raise for ImageNet-sized N
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "python -m pipeline.stages.knn --params {RESOLVED} --features {input.features} --data data --out results/knn > {log} 2>&1"
