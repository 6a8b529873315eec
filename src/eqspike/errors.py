"""Exceptions users see: each message names the problem and the fix.

The CLI turns any :class:`EqspikeError` into a one-paragraph message and a non-zero exit code
instead of a traceback.
"""

from __future__ import annotations


class EqspikeError(Exception):
    """Base class of every error eqspike raises on purpose (bad input, missing data...)."""


class ConfigError(EqspikeError, ValueError):
    """A config key or value is wrong; the message names the key, the value and what is allowed."""


class DataError(EqspikeError):
    """A dataset file is missing, truncated or corrupt, or cannot be downloaded."""


class DivergenceError(EqspikeError):
    """Training produced NaN/inf or exploding weights; the last good checkpoint is kept."""


class CheckpointError(EqspikeError):
    """A run directory or checkpoint is missing or inconsistent."""
