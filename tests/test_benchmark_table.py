"""The BENCHMARKS.md results table: one row per metric, each command listed once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

COMMON = Path(__file__).resolve().parent.parent / "benchmarks" / "common.py"


def _load_common():
    spec = importlib.util.spec_from_file_location("benchmarks_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_rows_and_commands_listed_once(tmp_path: Path) -> None:
    common = _load_common()
    results = tmp_path / "results"
    results.mkdir()
    result = {
        "name": "toy",
        "command": "python benchmarks/toy.py a; python benchmarks/toy.py b",
        "date": "2026-11-25T10:00:00+00:00",
        "metrics": {"accuracy": 0.91234, "epochs": 3},
        "targets": {"accuracy": ">= 0.9"},
    }
    (results / "toy.json").write_text(json.dumps(result))
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text(f"# B\n\n{common.MARK_BEGIN}\nold\n{common.MARK_END}\n\nhand notes\n")

    common.refresh_table(results, markdown)

    text = markdown.read_text()
    assert "old" not in text and text.endswith("hand notes\n")
    assert "| toy | `accuracy` | 0.9123 | >= 0.9 | 2026-11-25 |" in text
    assert "| toy | `epochs` | 3 |  | 2026-11-25 |" in text
    assert text.count("python benchmarks/toy.py a") == 1
    assert "  - `python benchmarks/toy.py b`" in text
