"""Typed configs for the MentalChat16K data layer (conf/data) and the shared prompt (conf/prompt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, Optional


class OnBadRow(str, Enum):
    error = "error"
    skip = "skip"


class OnMissingMarker(str, Enum):
    """What to do with a cell whose whole text is a missing-value marker (``nan``, ``null``, ``None``) that a
    spreadsheet or pandas export wrote in place of an empty cell."""

    warn = "warn"  # keep the text, warn naming file, row and column
    keep = "keep"  # keep it silently (the text is really meant)
    bad_row = "bad_row"  # a bad row: data.on_bad_row decides (error or skip)


class Batching(str, Enum):
    packing = "packing"  # several examples per row, per-example position ids (no cross-attention)
    length_grouped = "length_grouped"  # padded batches of similar length


@dataclass
class DataConfig:
    """Where the data comes from, which sources make the split, and how it becomes batches."""

    name: str = "???"  # synthetic | interview | both | sample
    hub_repo: Optional[str] = "ShenLab/MentalChat16K"  # used when ``root`` is null
    hub_revision: Optional[str] = None  # pin a hub commit for reproducible runs
    hub_cache_dir: Optional[str] = None  # null: the Hugging Face default cache
    root: Optional[str] = None  # local dir holding the files (a mirror with the hub's names works unchanged)
    files: Dict[str, str] = field(
        default_factory=lambda: {"interview": "Interview_Data_6K.csv", "synthetic": "Synthetic_Data_10K.csv"}
    )
    sources: List[str] = field(default_factory=lambda: ["interview", "synthetic"])
    # paper: interview pairs < 40 words dropped; counted over input + output words of a pair
    min_words: Dict[str, int] = field(default_factory=lambda: {"interview": 40})
    dedupe: bool = True
    on_bad_row: OnBadRow = OnBadRow.error
    on_missing_marker: OnMissingMarker = OnMissingMarker.warn
    val_fraction: float = 0.05
    seed: int = 42
    max_seq_len: int = 1024
    batching: Batching = Batching.packing
    micro_batch_size: int = 4  # packing: rows of max_seq_len tokens per batch; length_grouped: examples
    num_workers: int = 0


@dataclass
class PromptConfig:
    """The one system instruction used by training AND inference; ``version`` keys answers and judgments."""

    name: str = "???"
    version: str = "???"
    system: str = "???"
