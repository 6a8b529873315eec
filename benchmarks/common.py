"""Shared by the benchmark scripts: record a result JSON and refresh BENCHMARKS.md's table.

Benchmarks are not tests: they measure accuracy, speed and memory on this machine and write
``benchmarks/results/<name>.json`` = {name, command, date, machine, metrics, notes}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from eqspike.ep.precision import native_bfloat16
from eqspike.io import atomic_write_json, atomic_write_text
from eqspike.train.environment import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MARK_BEGIN, MARK_END = "<!-- results:begin -->", "<!-- results:end -->"


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_bfloat16": native_bfloat16("cpu"),  # emulated bfloat16 drives run ~16x slower
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def train_or_resume(config, out: Path, data_dir, stop_after: int | None = None) -> dict:
    """Train ``config`` into ``out``, or continue it there from its latest checkpoint."""
    from eqspike.train.api import resume, train
    from eqspike.train.checkpoint import latest_checkpoint_path

    if latest_checkpoint_path(out) is not None:
        return resume(out, None, data_dir, False, stop_after)
    return train(config, None, out, data_dir, False, stop_after)


def this_command() -> str:
    """The command line that runs this benchmark, as a user would type it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def kept_results(name: str) -> tuple[dict[str, Any], str]:
    """The metrics of ``results/<name>.json`` so far and the commands behind them with this
    one added ("; "-joined): for benchmarks whose invocations each add their own keys."""
    path = RESULTS / f"{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {"metrics": {}, "command": ""}
    commands = [c for c in previous["command"].split("; ") if c]
    if this_command() not in commands:
        commands.append(this_command())
    return previous["metrics"], "; ".join(commands)


def record(
    name: str,
    metrics: dict[str, Any],
    notes: str = "",
    targets: dict | None = None,
    command: str | None = None,
) -> Path:
    """Write results/<name>.json and refresh the table in BENCHMARKS.md; ``command``: the
    command(s) behind the metrics (default: this one)."""
    result = {
        "name": name,
        "command": command or this_command(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "metrics": metrics,
        "targets": targets or {},
        "notes": notes,
    }
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, result)
    refresh_table()
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        if len(value) <= 4 and all(isinstance(v, int | float | str) for v in value.values()):
            return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
        # nested details (assumptions, hardware): too wide for a table
        return "(" + ", ".join(list(value)[:3]) + (", …" if len(value) > 3 else "") + ": see JSON)"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value[:8]) + (", …]" if len(value) > 8 else "]")
    return str(value)


def refresh_table(results: Path = RESULTS, markdown: Path = ROOT / "BENCHMARKS.md") -> None:
    """Rebuild the results table between the markers of BENCHMARKS.md from results/*.json.

    One row per metric; each benchmark's command(s) are listed once, under the table, rather
    than repeated on every row of that benchmark.
    """
    rows = ["| benchmark | metric | value | target | date |", "|---|---|---|---|---|"]
    commands = ["", "Commands that wrote these results, per benchmark:", ""]
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        for key, value in data["metrics"].items():
            target = data.get("targets", {}).get(key, "")
            rows.append(
                f"| {data['name']} | `{key}` | {_fmt(value)} | {target} | {data['date'][:10]} |"
            )
        parts = [c.strip() for c in data["command"].split("; ") if c.strip()]
        commands.append(f"- **{data['name']}**:")
        commands.extend(f"  - `{part}`" for part in dict.fromkeys(parts))
    text = (
        markdown.read_text() if markdown.exists() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    )
    if MARK_BEGIN not in text:
        text += f"\n{MARK_BEGIN}\n{MARK_END}\n"
    head, _, rest = text.partition(MARK_BEGIN)
    _, _, tail = rest.partition(MARK_END)
    body = "\n".join(rows + commands)
    atomic_write_text(markdown, head + MARK_BEGIN + "\n" + body + "\n" + MARK_END + tail)


def speed_arguments(description: str, batches: int) -> argparse.Namespace:
    """The options every speed benchmark takes; sets torch's threads and flushes denormals."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batches", type=int, default=batches)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    return args


def timed(step: Callable, batches: Sequence[tuple], warmup: int = 3) -> tuple[float, Any]:
    """Seconds to run ``step(*batch)`` over all batches (after ``warmup`` untimed ones), and
    the last result."""
    for batch in batches[:warmup]:
        step(*batch)
    start = time.perf_counter()
    out = None
    for batch in batches:
        out = step(*batch)
    return time.perf_counter() - start, out
