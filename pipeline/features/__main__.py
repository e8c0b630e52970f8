"""``python -m pipeline.features``: the features stage (see :mod:`pipeline.features.stage`)."""
from pipeline.errors import run_cli
from pipeline.features.stage import main

run_cli(main)
