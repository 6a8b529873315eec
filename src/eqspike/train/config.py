"""Run configuration: YAML -> a validated, typed schema, with ``key=value`` overrides.

The sections every algorithm shares (``data``, ``optimizer``, ``train``) live in
:class:`RunConfig`; an algorithm subclasses it with its own sections (``model``, ``solver``...)
and registers itself in :mod:`eqspike.algorithms`. Unknown keys and bad values are errors that
name the key, the value and what is allowed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eqspike.errors import ConfigError


class StrictModel(BaseModel):
    """Pydantic model that rejects unknown keys and validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class DataConfig(StrictModel):
    """Which dataset, where it lives, and how it is split and batched."""

    dataset: Literal["mnist", "fashion_mnist", "yinyang"] = "yinyang"
    dir: str | None = Field(
        None, description="folder holding <dataset>/ files (else EQSPIKE_DATA, cache)"
    )
    download: bool = Field(True, description="download into the cache when the files are missing")
    train_subset: int | None = Field(
        None, gt=0, description="use only the first N training samples"
    )
    validation: int | Literal["native"] = Field(
        0, description="hold out the last N training samples, or use the dataset's own split"
    )
    test_subset: int | None = Field(None, gt=0, description="evaluate on the first N test samples")
    batch_size: int = Field(20, gt=0, description="global batch size (split across ranks)")
    eval_batch_size: int = Field(1000, gt=0)
    repeat_features: int = Field(
        1, ge=1, description="tile each sample's features this many times (input population)"
    )
    augment_shift: int = Field(
        0,
        ge=0,
        le=4,
        description="training images: random translation of up to this many pixels (0 = off)",
    )
    augment_hflip: bool = Field(
        False,
        description="training images: mirror left-right with probability 1/2 (for label-"
        "symmetric data such as Fashion-MNIST, not digits)",
    )

    @property
    def augments(self) -> bool:
        """Whether training images are augmented at all."""
        return bool(self.augment_shift or self.augment_hflip)

    @field_validator("validation")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0 (a number of held-out samples) or 'native'")
        return value


class OptimizerConfig(StrictModel):
    """Optimiser applied to the estimated gradients; ``lr`` may be a list, one per layer."""

    kind: Literal["sgd", "adam"] = "sgd"
    lr: float | list[float] = 0.1
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "step"] = "constant"
    step_epochs: int = Field(10, gt=0, description="step schedule: decay every this many epochs")
    gamma: float = Field(0.5, gt=0.0, le=1.0, description="step schedule: decay factor")

    @field_validator("lr")
    @classmethod
    def _positive(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(v <= 0 for v in values):
            raise ValueError("learning rates must be > 0")
        return value

    def layer_lrs(self, n_layers: int) -> list[float]:
        if isinstance(self.lr, float | int):
            return [float(self.lr)] * n_layers
        if len(self.lr) != n_layers:
            raise ConfigError(
                f"optimizer.lr has {len(self.lr)} values but the network has {n_layers} weight "
                f"layers; give one learning rate per layer or a single number."
            )
        return list(self.lr)


class TrainConfig(StrictModel):
    """The training loop: epochs, device, numerics, divergence guard, checkpoints."""

    epochs: int = Field(10, gt=0)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's)")
    max_abs_weight: float = Field(1e3, gt=0, description="stop as diverged above this |weight|")
    keep_checkpoints: int = Field(2, gt=0, description="how many epoch checkpoints to keep")
    init_from: str | None = Field(
        None, description="start from this run directory's latest weights (fine-tuning)"
    )
    plots: bool = True
    deterministic: bool = Field(
        True,
        description="on CUDA: deterministic kernels (cuDNN, cuBLAS, scatter/index adds) so that "
        "a run replays bit for bit from its config and seed; CPU kernels already are",
    )


class RunConfig(StrictModel):
    """Sections shared by every algorithm."""

    algorithm: str
    name: str = "run"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def check_data(self, n_inputs: int, n_classes: int) -> None:
        """Raise :class:`ConfigError` if the model does not fit the data (algorithms override)."""


# --- loading ------------------------------------------------------------------------------


def configs_root() -> Path:
    """The configs shipped with the package (``src/eqspike/configs``, linked as ``configs/``)."""
    return Path(str(resources.files("eqspike") / "configs"))


def shipped_configs() -> dict[str, Path]:
    """``{name: path}`` of every shipped config, e.g. ``rate_ep/mnist``."""
    root = configs_root()
    return {str(p.relative_to(root).with_suffix("")): p for p in sorted(root.rglob("*.yaml"))}


DEFAULT_CONFIG = "demo/yinyang"


def resolve_config_path(name_or_path: str | Path | None) -> Path:
    """A file path, or the name of a shipped config (``rate_ep/mnist``); None = the demo."""
    if name_or_path is None:
        name_or_path = DEFAULT_CONFIG
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    key = str(name_or_path).removesuffix(".yaml").removeprefix("configs/")
    if key in shipped:
        return shipped[key]
    raise ConfigError(
        f"config {str(name_or_path)!r} is neither a file nor a shipped config; shipped configs: "
        f"{', '.join(shipped)} (see `eqspike list`)."
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a', 'b', 'c'], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.epochs=5")
    key, _, raw = text.partition("=")
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value {raw!r} ({exc})") from exc
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a raw (dict) config, creating sections as needed."""
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[keys[-1]] = value
    return raw


def validate_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a raw dict with the schema of its ``algorithm``."""
    from eqspike.algorithms import ALGORITHMS

    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: a config must be a mapping of sections, got {type(raw).__name__}"
        )
    algorithm = raw.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"{source}: key 'algorithm' is {algorithm!r}; allowed: {', '.join(ALGORITHMS)}."
        )
    schema = ALGORITHMS[algorithm].config
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, schema, raw, source)) from None


def load_config(
    name_or_path: str | Path | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Read a YAML config (file or shipped name), apply overrides, validate."""
    path = resolve_config_path(name_or_path)
    raw = read_raw_config(path)
    raw = apply_overrides(raw, list(overrides or []))
    return validate_config(raw, str(path))


BASE_KEY = "base"


def merge_configs(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: sections merge key by key, any other value (lists too) replaces."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_base(name: Any, including: Path) -> Path:
    """A ``base:`` names a file relative to the including one, or a shipped config."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"{including}: key 'base' must name a config (a shipped name such as conv/mnist, or a "
            f"path relative to this file), got {name!r}"
        )
    relative = including.parent / name
    for candidate in (relative, relative.with_suffix(".yaml")):
        if candidate.is_file():
            return candidate
    try:
        return resolve_config_path(name)
    except ConfigError as exc:
        raise ConfigError(f"{including}: key 'base' = {name!r}: {exc}") from None


def read_raw_config(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping at ``path``, with its ``base:`` chain merged under it.

    A config may start from another (``base: conv/mnist``) and list only what it changes, so a
    recipe's stages share one network and solver block instead of repeating it.
    """
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"configs include each other in a cycle: {cycle}; remove one 'base'.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or BASE_KEY not in raw:
        return raw
    raw = dict(raw)
    base_path = _resolve_base(raw.pop(BASE_KEY), path)
    base = read_raw_config(base_path, (*_chain, path.resolve()))
    if not isinstance(base, dict):
        raise ConfigError(f"{base_path} (the base of {path}) is not a mapping of sections.")
    return merge_configs(base, raw)


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# --- error messages ---------------------------------------------------------------------


def _field_schema(schema: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the field at ``loc`` (None if not a model)."""
    model: Any = schema
    for key in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(key))
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _value_at(raw: Any, loc: tuple) -> Any:
    for key in loc:
        try:
            raw = raw[key]
        except (KeyError, IndexError, TypeError):
            return "<missing>"
    return raw


def format_validation_error(
    exc: ValidationError, schema: type[BaseModel], raw: dict, source: str
) -> str:
    lines = [f"{source}: invalid config"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
        key = ".".join(loc)
        if err["type"] == "extra_forbidden":
            parent = _field_schema(schema, loc[:-1]) or schema
            allowed = ", ".join(parent.model_fields)
            lines.append(f"  - unknown key '{key}'; allowed keys here: {allowed}")
            continue
        value = _value_at(raw, err["loc"][: len(loc)] if loc else ())
        field_owner = _field_schema(schema, loc[:-1]) if loc else None
        description = ""
        if field_owner is not None and loc and loc[-1] in field_owner.model_fields:
            desc = field_owner.model_fields[loc[-1]].description
            description = f" ({desc})" if desc else ""
        message = err["msg"].removeprefix("Value error, ")
        if isinstance(value, dict) or not key:  # a whole section: the message says what
            lines.append(f"  - {key + ': ' if key else ''}{message}{description}")
        else:
            lines.append(f"  - key '{key}' = {value!r}: {message}{description}")
    return "\n".join(lines)
