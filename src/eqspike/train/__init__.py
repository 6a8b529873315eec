"""Infrastructure shared by every algorithm: configs, the trainer, checkpoints, distributed."""

from eqspike.train.api import LoadedRun, load, resume, train
from eqspike.train.config import RunConfig, load_config
from eqspike.train.trainer import Trainer

__all__ = ["LoadedRun", "RunConfig", "Trainer", "load", "load_config", "resume", "train"]
