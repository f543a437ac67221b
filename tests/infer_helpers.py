"""Shared pieces of the inference tests: the real benchmark file and the infer config on a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mc16k.config import register_configs
from mc16k.paths import resource_path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
REAL_QUESTIONS = Path(resource_path("benchmark/evalq200_question.jsonl"))


def tiny_overrides(model_dir: Path, work: Path) -> list[str]:
    """Answer with the random tiny model (chat template, fp32, no quantization) into ``work``."""
    return [
        "model.name=tiny",
        f"model.name_or_path={model_dir}",
        "model.prompt_format=chat_template",
        "model.pad_token='<unk>'",
        "model.dtype=float32",
        "quant=none",
        f"paths.answers_dir={work}/answers",
        f"paths.output_dir={work}/out",
        f"paths.cache_dir={work}/cache",
        "logger=none",
        "infer.show_progress=false",
    ]


def compose_infer(overrides: list[str]) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("infer", overrides=overrides)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on the shared 2-core box: thread hand-offs cost more than they save (and vary less)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
