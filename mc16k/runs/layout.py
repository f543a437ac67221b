"""The layout of a training run dir, the interface between train.py and everything that reads its runs.

    <run_dir>/run.json            which run owns the dir (written before any checkpoint)
    <run_dir>/provenance.json     code version, packages, resolved config, data file hashes
    <run_dir>/checkpoints/        adapter-only Lightning checkpoints (last.ckpt resumes a killed job)
    <run_dir>/adapter/            PEFT adapter + tokenizer + mc16k_run.json + config.yaml
    <run_dir>/data_split.json     the validation rows: source, 1-based data row of its file, content hash
    <run_dir>/metrics.json        final metrics
    <run_dir>/done.json           written last: the run is finished

``read_run_info`` is the one reader of ``adapter/mc16k_run.json`` (inference and export rebuild the base
model from it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mc16k.errors import BadInputError, MissingInputError

RUN_FILE = "run.json"
PROVENANCE_FILE = "provenance.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
ADAPTER_DIR = "adapter"
RUN_INFO_FILE = "mc16k_run.json"  # inside ADAPTER_DIR
ADAPTER_CONFIG_FILE = "config.yaml"  # inside ADAPTER_DIR: the run's resolved config
DATA_SPLIT_FILE = "data_split.json"
METRICS_FILE = "metrics.json"
DONE_FILE = "done.json"

RUN_INFO_KEYS = ("run_id", "name", "model", "quant", "lora", "prompt", "data_split", "seed")


def read_run_info(adapter_dir: str | Path) -> dict[str, Any]:
    """The ``mc16k_run.json`` an adapter dir carries: base model and quant config, prompt, data split, run id.

    Raises ``FileNotFoundError`` when the dir was not written by mc16k training, ``ValueError`` naming the
    file when it is unreadable or lacks a field.
    """
    path = Path(adapter_dir) / RUN_INFO_FILE
    if not path.is_file():
        raise MissingInputError(f"{path} not found: {adapter_dir} was not written by mc16k training")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BadInputError(f"{path}: unreadable run description (JSONDecodeError: {err})") from err
    if not isinstance(info, dict):
        raise BadInputError(f"{path}: unreadable run description (expected an object)")
    missing = [key for key in RUN_INFO_KEYS if key not in info]
    if missing:
        raise BadInputError(f"{path}: unreadable run description (KeyError: missing {missing})")
    return info
