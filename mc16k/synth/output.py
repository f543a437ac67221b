"""The pipelines' outputs: a CSV in the hub's layout (what ``data=`` configs read) and a JSON report beside it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mc16k.atomic_io import write_text_atomically

SYNTHETIC_FILE = "Synthetic_Data_10K.csv"  # the hub's names, so data.root=<out_dir> reads them unchanged
INTERVIEW_FILE = "Interview_Data_6K.csv"


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """All rows at once, atomically (a crash leaves the previous file or the new one)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def report_path(csv_path: Path, kind: str = "report") -> Path:
    """``Synthetic_Data_10K.csv`` -> ``Synthetic_Data_10K.report.json`` (or ``.pii_report.json``)."""
    return csv_path.with_name(f"{csv_path.stem}.{kind}.json")
