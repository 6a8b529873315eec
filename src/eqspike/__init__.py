"""eqspike: spiking networks trained with local, hardware-friendly learning rules.

Python API (mirrors the CLI)::

    import eqspike
    summary = eqspike.train("rate_ep/mnist", overrides=["train.epochs=1"], data_dir="data/")
    run = eqspike.load(summary["run_dir"])     # run.model is an nn.Module
"""

__version__ = "0.1.0"

from eqspike.train.api import load, resume, train

__all__ = ["__version__", "load", "resume", "train"]
