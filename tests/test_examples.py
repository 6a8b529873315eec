"""The tutorial a newcomer runs top to bottom keeps working (built-in data, ~30 s)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nir

TUTORIAL = Path(__file__).resolve().parent.parent / "examples" / "tutorial.py"


def test_tutorial_runs_top_to_bottom(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tutorial", TUTORIAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    printed = capsys.readouterr().out
    for step in range(1, 7):
        assert f"\n{step}. " in "\n" + printed
    assert (tmp_path / "ep" / "energy" / "energy.md").is_file()
    assert (tmp_path / "ttfs" / "decision_map.png").is_file()
    assert "lif1" in nir.read(tmp_path / "ttfs.nir").nodes
