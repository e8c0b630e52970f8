"""ganbench: a reproducible benchmark pipeline for GAN methods.

Every stage is a module of :mod:`pipeline.stages`, run as ``python -m pipeline.stages.<stage>``;
Snakemake rules in ``rules/`` and DVC stages in ``dvc.yaml`` call them with paths fixed by the stage
contracts in README.md (the stage table). Everything else in ``pipeline/`` is the library they use:
one method per file in ``methods/``, one metric per file in ``metrics/``, datasets, feature
extractors, the trainer, the networks, configuration and errors.
"""
