from pathlib import Path

import pytest

from eqspike.errors import ConfigError
from eqspike.train.config import load_config, parse_override, shipped_configs, validate_config


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_validates(name):
    config = load_config(name)
    assert config.name and config.train.epochs > 0


PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
# Settings a run may legitimately differ in from its shipped config: where its initial weights
# were found (saved as an absolute path) and the drive precision chosen for the CPU it ran on.
MACHINE_SPECIFIC = {"train": ("init_from",), "solver": ("drive_dtype",)}


@pytest.mark.parametrize(
    "name",
    [n for n in sorted(shipped_configs()) if (PRETRAINED / load_config(n).name).is_dir()],
)
def test_shipped_config_still_describes_its_pretrained_run(name):
    """Editing a shared base config (conv/mnist.yaml is the base of every conv config) must not
    silently change what a config that produced a committed run trains."""
    shipped = load_config(name).model_dump()
    saved = load_config(PRETRAINED / shipped["name"] / "config.yaml").model_dump()
    for config in (shipped, saved):
        for section, keys in MACHINE_SPECIFIC.items():
            for key in keys:
                config.get(section, {}).pop(key, None)
    assert saved == shipped


def test_default_is_the_demo():
    assert load_config(None).data.dataset == "yinyang"


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as info:
        load_config("demo/yinyang", ["solver.free_stepz=3"])
    msg = str(info.value)
    assert "solver.free_stepz" in msg and "free_steps" in msg and "nudged_steps" in msg


def test_bad_value_names_key_value_and_allowed():
    with pytest.raises(ConfigError, match=r"solver.kind' = 'foo'.*'discrete' or 'continuous'"):
        load_config("demo/yinyang", ["solver.kind=foo"])
    with pytest.raises(ConfigError, match=r"estimator.beta' = 0.*greater than 0"):
        load_config("demo/yinyang", ["estimator.beta=0"])
    with pytest.raises(ConfigError, match=r"algorithm.*allowed: rate_ep"):
        validate_config({"algorithm": "nope"})


def test_learning_rates_must_match_layers():
    with pytest.raises(
        ConfigError, match=r"optimizer.lr has 3 values but the network has 1 weight layers"
    ):
        load_config("demo/yinyang", ["model.layers=[4,3]", "optimizer.lr=[0.1,0.2,0.3]"])


def test_layers_must_fit_data():
    config = load_config("demo/yinyang", ["model.layers=[5,10,3]"])
    with pytest.raises(ConfigError, match=r"use model.layers = \[4, 10, 3\]"):
        config.check_data(4, 3)


def test_overrides_parse_yaml_values():
    assert parse_override("optimizer.lr=[0.1, 0.05]") == (["optimizer", "lr"], [0.1, 0.05])
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config("demo/yinyang", ["seed.x=1"])


def test_unknown_config_name_lists_shipped():
    with pytest.raises(ConfigError, match="demo/yinyang"):
        load_config("no/such")


def test_base_config_merges_sections_and_child_wins(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "algorithm: rate_ep\nname: parent\ndata: {dataset: yinyang, batch_size: 20}\n"
        "optimizer: {lr: [0.1, 0.05]}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "base: parent.yaml\nname: child\ndata: {batch_size: 10}\noptimizer: {lr: [0.2, 0.1]}\n"
    )
    config = load_config(tmp_path / "child.yaml")
    assert config.name == "child"
    assert config.data.dataset == "yinyang"  # kept from the base's section
    assert config.data.batch_size == 10  # the child's value wins
    assert config.optimizer.lr == [0.2, 0.1]  # lists replace, never concatenate


def test_staged_conv_configs_share_their_first_stage_block():
    first, third = load_config("conv/mnist_noshift"), load_config("conv/mnist_finetune2")
    assert third.model == first.model and third.solver == first.solver
    assert third.data.augment_shift == 1  # from the second stage, its base
    assert third.train.init_from == "pretrained/conv-mnist-finetune"
    assert first.data.augment_shift == 0 and load_config("conv/mnist").data.augment_shift == 1
    fashion = load_config("conv/fashion")
    assert fashion.data.dataset == "fashion_mnist" and fashion.data.augment_shift == 0


def test_base_errors_name_the_problem(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nalgorithm: rate_ep\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: nowhere/missing\nname: c\n")
    with pytest.raises(ConfigError, match=r"key 'base' = 'nowhere/missing'.*shipped configs"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [1, 2]\n")
    with pytest.raises(ConfigError, match="must name a config"):
        load_config(tmp_path / "d.yaml")
