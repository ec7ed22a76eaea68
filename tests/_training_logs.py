"""Reading a training run's ``log.csv`` in tests."""
from __future__ import annotations

import csv


def log_rows(run_dir) -> list[dict]:
    """The rows of ``run_dir/log.csv`` without the timing columns (which differ between runs)."""
    with open(run_dir / "log.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "cpu_time")} for r in csv.DictReader(fh)]
