"""Per-epoch metrics, kept as JSONL (the record) and CSV (for spreadsheets)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from eqspike.io import atomic_write_text


class MetricsLog:
    """Rows of per-epoch metrics; both files are rewritten atomically after each epoch."""

    def __init__(self, run_dir: Path) -> None:
        self.jsonl = Path(run_dir) / "metrics.jsonl"
        self.csv = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []

    def load(self, up_to_epoch: int) -> None:
        """Read existing rows (on resume), dropping epochs after the checkpoint."""
        if self.jsonl.is_file():
            rows = [
                json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()
            ]
            self.rows = [r for r in rows if r.get("epoch", 0) <= up_to_epoch]

    def write(self) -> None:
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in self.rows))
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv, buffer.getvalue())
