"""Device profiles: energy per event on a substrate, each value with its source.

Profiles are YAML files (``eqspike/hardware/profiles/*.yaml`` ship with the package; pass
your own with ``--profile-file``). Event kinds a profile does not price are reported as
"not priced", never silently counted as free.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from eqspike.errors import ConfigError
from eqspike.train.config import StrictModel, format_validation_error

EVENT_KINDS = (
    "synaptic_event",  # a spike delivered through one synapse (an accumulate)
    "mac",  # dense multiply-accumulate (non-spiking inputs, digital accelerators)
    "flop",  # dense floating-point operation (GPU/CPU reference job)
    "neuron_update",  # one neuron state update (per time step, or per event)
    "neuron_update_inactive",
    "weight_update",  # one synapse changed by learning
    "spike_route",  # one spike sent over the on-chip network
    "memory_read_64b",
)


class EventCost(StrictModel):
    pj: float = Field(ge=0.0, description="energy per event, picojoules")
    note: str = ""


class PerClassification(StrictModel):
    """System-level figures of analogue substrates that have no per-event costs."""

    seconds: float | None = Field(None, gt=0.0)
    uj: float | None = Field(None, gt=0.0)
    network: str = ""


class DeviceProfile(StrictModel):
    name: str
    description: str
    kind: Literal["digital", "neuromorphic", "analog", "gpu", "cpu"]
    citation: str
    caveat: str = ""
    costs: dict[str, EventCost] = Field(default_factory=dict)
    utilisation: float | None = Field(
        None, gt=0.0, le=1.0, description="GPU: fraction of peak throughput assumed"
    )
    per_classification: PerClassification | None = None

    @field_validator("costs")
    @classmethod
    def _known_kinds(cls, costs: dict[str, EventCost]) -> dict[str, EventCost]:
        unknown = sorted(set(costs) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; known: {list(EVENT_KINDS)}")
        return costs


def shipped_profile_paths() -> dict[str, Path]:
    root = Path(str(resources.files("eqspike") / "hardware" / "profiles"))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def load_profile(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc}") from None
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, DeviceProfile, data or {}, str(path))
        raise ConfigError(message.replace("invalid config", "invalid device profile")) from None


def load_profiles(
    names: list[str] | None = None, extra_files: list[str | Path] | None = None
) -> list[DeviceProfile]:
    """Shipped profiles (all, or those named) plus the user's own files."""
    shipped = shipped_profile_paths()
    chosen = names or list(shipped)
    unknown = [n for n in chosen if n not in shipped]
    if unknown:
        raise ConfigError(
            f"unknown device profile(s) {unknown}; shipped: {sorted(shipped)} (or give your "
            "own YAML with --profile-file)"
        )
    profiles = [load_profile(shipped[n]) for n in chosen]
    profiles += [load_profile(p) for p in extra_files or []]
    return profiles
