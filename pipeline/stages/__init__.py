"""The stages the workflow's rules run, one module each: ``python -m pipeline.stages.<stage> --help``.

data, features, knn, reference, train, sample, real (held-out real images as a run's samples),
evaluate, encoder_probe, aggregate, report. A stage reads its inputs and params, calls the library
in :mod:`pipeline` (methods/, metrics/, datasets/, features/, the trainer, the networks), and
writes its outputs atomically; its failures are one ``error:`` line (:func:`pipeline.errors.run_cli`).
"""
