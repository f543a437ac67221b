"""Shared test set-up: no network, no W&B uploads, one tiny random model per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny Llama + BPE tokenizer (ChatML chat template, ``<unk>``, ``</s>``) built once."""
    from mc16k.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_mixtral_dir(tmp_path_factory):
    """A random tiny Mixtral (4 experts, 2 per token) with the same tokenizer, saved in the hub's layout."""
    from mc16k.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-mixtral"), arch="mixtral")
