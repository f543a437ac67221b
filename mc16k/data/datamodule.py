"""The LightningDataModule the training stage plugs in: rows → encoded examples → planned batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from mc16k.data.batching import BatchPlan, collate, plan_batches, token_efficiency
from mc16k.data.config import Batching, DataConfig, PromptConfig
from mc16k.data.formatting import EncodedExample, encode_example
from mc16k.data.loading import Row, resolve_files
from mc16k.data.prepare import PreparedData, prepare_rows
from mc16k.models.config import ModelConfig

log = logging.getLogger(__name__)


@dataclass
class EncodedSplit:
    """One split's examples, its batch plan and what encoding and batching cost."""

    examples: list[EncodedExample]
    plan: BatchPlan
    truncated: int  # examples whose user text (or response) was cut
    response_truncated: int
    token_efficiency: float

    @property
    def tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)

    @property
    def response_tokens(self) -> int:
        return sum(sum(1 for label in e.labels if label >= 0) for e in self.examples)


class _PlannedBatches(Dataset):
    """Each item is one whole planned batch, so a DataLoader (and a DistributedSampler) shuffles batches."""

    def __init__(self, split: EncodedSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split.plan)

    def __getitem__(self, index: int) -> list[list[EncodedExample]]:
        return [[self.split.examples[i] for i in row] for row in self.split.plan[index]]


def encode_split(
    rows: list[Row],
    tokenizer: PreTrainedTokenizerBase,
    data_cfg: DataConfig,
    prompt_cfg: PromptConfig,
    model_cfg: ModelConfig,
) -> EncodedSplit:
    """Encode rows with the one formatting function and plan their batches."""
    examples = [
        encode_example(tokenizer, model_cfg, prompt_cfg.system, row.input, row.output, data_cfg.max_seq_len)
        for row in rows
    ]
    lengths = [len(e.input_ids) for e in examples]
    plan = plan_batches(
        lengths, data_cfg.batching, data_cfg.micro_batch_size, data_cfg.max_seq_len, data_cfg.seed
    )
    return EncodedSplit(
        examples=examples,
        plan=plan,
        truncated=sum(e.truncated for e in examples),
        response_truncated=sum(e.response_truncated for e in examples),
        token_efficiency=token_efficiency(lengths, plan),
    )


class MentalChatDataModule(L.LightningDataModule):
    """MentalChat16K (or any file in its schema) as packed or length-grouped training batches."""

    def __init__(
        self,
        data_cfg: DataConfig,
        prompt_cfg: PromptConfig,
        model_cfg: ModelConfig,
        tokenizer: PreTrainedTokenizerBase,
    ):
        super().__init__()
        self.data_cfg = data_cfg
        self.prompt_cfg = prompt_cfg
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.prepared: PreparedData | None = None
        self.train_split: EncodedSplit | None = None
        self.val_split: EncodedSplit | None = None

    def prepare_data(self) -> None:
        """Fetch hub files once per node (a no-op for local files)."""
        resolve_files(self.data_cfg)

    def setup(self, stage: str | None = None) -> None:
        if self.prepared is not None:
            return
        self.prepared = prepare_rows(self.data_cfg, self.prompt_cfg.system)
        args = (self.tokenizer, self.data_cfg, self.prompt_cfg, self.model_cfg)
        self.train_split = encode_split(self.prepared.train, *args)
        self.val_split = encode_split(self.prepared.val, *args)
        for name, split in (("train", self.train_split), ("val", self.val_split)):
            log.info(
                "data %s: %d examples, %d tokens, %d batches, %d truncated (%d in the response), "
                "token efficiency %.3f (%s)",
                name,
                len(split.examples),
                split.tokens,
                len(split.plan),
                split.truncated,
                split.response_truncated,
                split.token_efficiency,
                Batching(self.data_cfg.batching).value,
            )

    def summary(self) -> dict[str, float]:
        """Flat numbers for loggers (W&B, CSV) and run metadata: row counts, truncation, token efficiency."""
        if self.prepared is None or self.train_split is None or self.val_split is None:
            raise RuntimeError("call setup() before summary()")
        stats: dict[str, float] = {}
        for source, report in self.prepared.reports.items():
            for name in ("read", "skipped", "too_short", "duplicates", "instruction_differs", "train", "val"):
                stats[f"data/{source}/{name}"] = getattr(report, name)
        for name, split in (("train", self.train_split), ("val", self.val_split)):
            stats[f"data/{name}/examples"] = len(split.examples)
            stats[f"data/{name}/tokens"] = split.tokens
            stats[f"data/{name}/response_tokens"] = split.response_tokens
            stats[f"data/{name}/batches"] = len(split.plan)
            stats[f"data/{name}/truncated"] = split.truncated
            stats[f"data/{name}/response_truncated"] = split.response_truncated
            stats[f"data/{name}/token_efficiency"] = split.token_efficiency
        return stats

    def _loader(self, split: EncodedSplit | None, shuffle: bool) -> DataLoader:
        if split is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return DataLoader(
            _PlannedBatches(split),
            batch_size=None,  # items are whole planned batches
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.data_cfg.seed) if shuffle else None,
            collate_fn=partial(collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=self.data_cfg.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_split, shuffle=False)
