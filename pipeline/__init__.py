"""ganbench: a reproducible benchmark pipeline for GAN methods.

Every stage is a module run as ``python -m pipeline.<stage>``; Snakemake rules in ``rules/`` and
DVC stages in ``dvc.yaml`` call them with paths fixed by the stage contracts in README.md (the stage table).
"""
