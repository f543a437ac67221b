"""The LightningDataModule on the bundled sample: model-ready batches, seeded order, reported statistics."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mc16k.data.config import Batching, DataConfig, PromptConfig
from mc16k.data.datamodule import MentalChatDataModule
from mc16k.data.tokenizer import load_tokenizer
from mc16k.paths import resource_path
from mc16k.schema import IGNORE_INDEX, ModelConfig, PromptFormat

PROMPT = OmegaConf.merge(
    OmegaConf.structured(PromptConfig),
    OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/prompt/counseling.yaml"),
)


def make_datamodule(model_dir: Path, batching: Batching, seed: int = 0) -> MentalChatDataModule:
    model_cfg = ModelConfig(
        name="tiny", name_or_path=str(model_dir), prompt_format=PromptFormat.chat_template, pad_token="<unk>"
    )
    data_cfg = DataConfig(
        name="sample",
        root=resource_path("data/sample"),
        batching=batching,
        max_seq_len=256,
        micro_batch_size=3,
        val_fraction=0.1,
        seed=seed,
    )
    datamodule = MentalChatDataModule(data_cfg, PROMPT, model_cfg, load_tokenizer(model_cfg))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("batching", list(Batching))
def test_every_example_is_batched_once_with_response_labels(tiny_model_dir, batching):
    datamodule = make_datamodule(tiny_model_dir, batching)
    stats = datamodule.summary()
    for name, loader in (("train", datamodule.train_dataloader()), ("val", datamodule.val_dataloader())):
        batches = list(loader)
        assert len(batches) == stats[f"data/{name}/batches"]
        assert all(batch["input_ids"].shape[1] <= 256 for batch in batches)
        real = sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in batches)
        # each example's first label is a prompt token, so collation keeps every response label
        assert real == stats[f"data/{name}/response_tokens"]
    assert stats["data/train/examples"] + stats["data/val/examples"] == 84  # 90 read - 3 short - 3 duplicates
    assert stats["data/interview/read"] == 46 and stats["data/synthetic/read"] == 44
    assert stats["data/train/truncated"] > 0  # max_seq_len=256 cuts the long sample rows
    assert 0.9 < stats["data/train/token_efficiency"] <= 1.0


def test_train_order_is_seeded(tiny_model_dir):
    def first_batches(seed: int) -> list[list[int]]:
        loader = make_datamodule(tiny_model_dir, Batching.packing, seed=seed).train_dataloader()
        return [batch["input_ids"].tolist() for batch in itertools.islice(loader, 3)]

    assert first_batches(3) == first_batches(3) != first_batches(4)
