"""The LightningDataModule the training stage plugs in: rows → encoded examples → planned batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import PreTrainedTokenizerBase

from mc16k.data.batching import BatchPlan, collate, plan_batches, token_efficiency
from mc16k.data.config import Batching, DataConfig, PromptConfig
from mc16k.data.formatting import EncodedExample, encode_example
from mc16k.data.loading import Row, resolve_files
from mc16k.data.prepare import PreparedData, prepare_rows
from mc16k.schema import ModelConfig

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


class _EpochOrder(DistributedSampler):
    """Batch indices in an order that is a pure function of (seed, epoch) (``randperm`` seeded with
    seed + epoch; this process's share under DDP), starting at batch ``start`` of the epoch so that a resumed
    run skips what it already trained on. A DistributedSampler even in one process, so Lightning keeps it
    under DDP instead of swapping in its own, and calls ``set_epoch`` on it every epoch."""

    start: int = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0  # only the epoch a run resumes in starts part-way
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return islice(super().__iter__(), self.start, None)


class _TrainLoader(DataLoader):
    """The training DataLoader. It reads its sampler (and starts workers) at the first batch, not at
    ``iter()``: Lightning creates the iterator before it calls ``set_epoch`` on a resumed run, and under FSDP
    before it restores the data position.

    The position itself is checkpointed by the datamodule (``state_dict``); ``state_dict`` /
    ``load_state_dict`` here only mark the loader as resumable, so Lightning does not warn that a mid-epoch
    resume replays batches."""

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()

    def state_dict(self) -> dict[str, int]:
        return {}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        pass


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
        self._train_order: _EpochOrder | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, batches done) from a checkpoint

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

    def _loader(self, split: EncodedSplit | None, train: bool) -> DataLoader:
        if split is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        batches = _PlannedBatches(split)
        kwargs: dict[str, Any] = dict(
            batch_size=None,  # items are whole planned batches
            collate_fn=partial(collate, pad_token_id=self.tokenizer.pad_token_id),
            num_workers=self.data_cfg.num_workers,
        )
        if not train:
            return DataLoader(batches, **kwargs)
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        self._train_order = _EpochOrder(batches, num_replicas=world, rank=rank, seed=self.data_cfg.seed)
        if self._resume is not None:
            self._train_order.epoch, self._train_order.start = self._resume
        return _TrainLoader(batches, sampler=self._train_order, **kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_split, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_split, train=False)

    def state_dict(self) -> dict[str, int]:
        """Checkpointed data position: the epoch and how many of its batches training steps have received.

        Read from Lightning's loop counters, not from the loader, which workers read ahead of training.
        Lightning's own loader-state restore is not used: it never happens when ``configure_optimizers``
        built the loader first (``estimated_stepping_batches``), as ours does."""
        if self.trainer is None or self._train_order is None:
            return {}
        epoch = self.trainer.current_epoch
        batches = self.trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if batches >= len(self._train_order):  # a finished epoch: resume at the next one
            epoch, batches = epoch + 1, 0
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Resume the batch order where the checkpoint left it (Lightning calls this before or after the
        training loader exists, depending on the strategy)."""
        if not state_dict:
            return
        self._resume = (state_dict["epoch"], state_dict["batches"])
        if self._train_order is not None:
            self._train_order.epoch, self._train_order.start = self._resume
