"""Batch plans and collation: sequence packing and length-grouped padding, both measured in token efficiency.

A plan is a list of batches; a batch is a list of rows; a row is a list of example indices. Packing puts
several examples in a row (best-fit decreasing into ``max_seq_len``) and marks each example's boundaries
with ``position_ids`` restarting at 0 and NO attention mask: transformers builds the block-diagonal mask
from the position ids, so no example attends to another. It does so only when the forward pass has no KV
cache: run the model with ``use_cache=False`` (or ``model.config.use_cache = False``), otherwise packed
examples silently attend to each other, as they would under an all-ones attention mask. Length-grouped padding puts one example per row and pads to the batch's
longest. Token efficiency = real tokens / tokens processed (rows × longest row, summed over batches).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence

import torch

from mc16k.data.config import Batching
from mc16k.data.formatting import EncodedExample
from mc16k.errors import BadInputError
from mc16k.schema import IGNORE_INDEX

BatchPlan = list[list[list[int]]]


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: each example (longest first) goes into the fullest row it still fits in."""
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise ValueError(f"examples {too_long[:5]} are longer than the packing capacity {capacity}")
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free tokens, row index), sorted
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        slot = bisect.bisect_left(free, (lengths[index], -1))
        if slot == len(free):
            rows.append([index])
            bisect.insort(free, (capacity - lengths[index], len(rows) - 1))
        else:
            space, row = free.pop(slot)
            rows[row].append(index)
            bisect.insort(free, (space - lengths[index], row))
    return rows


def plan_batches(
    lengths: Sequence[int], batching: Batching | str, micro_batch_size: int, max_seq_len: int, seed: int
) -> BatchPlan:
    """Batches of ``micro_batch_size`` rows of similar length (packed rows, or single examples)."""
    if micro_batch_size < 1:
        raise BadInputError(f"data.micro_batch_size must be >= 1, got {micro_batch_size}")
    if Batching(batching) is Batching.packing:
        rows = pack_rows(lengths, max_seq_len)
    else:
        rows = [[i] for i in range(len(lengths))]
    tie_break = random.Random(seed)
    keys = {id(row): (sum(lengths[i] for i in row), tie_break.random()) for row in rows}
    rows.sort(key=lambda row: keys[id(row)])
    return [rows[start : start + micro_batch_size] for start in range(0, len(rows), micro_batch_size)]


def token_efficiency(lengths: Sequence[int], plan: BatchPlan) -> float:
    """Real tokens / processed tokens (each batch processes rows × its longest row)."""
    real = processed = 0
    for batch in plan:
        row_lengths = [sum(lengths[i] for i in row) for row in batch]
        real += sum(row_lengths)
        processed += len(batch) * max(row_lengths)
    return real / processed if processed else 0.0


def collate(batch: list[list[EncodedExample]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Tensors for one batch of rows, right-padded; labels on padding are -100 (never via the pad id).

    Rows holding several examples (packing) get ``position_ids`` restarting per example and no attention
    mask; rows of one example get an ``attention_mask`` instead.
    """
    packed = any(len(row) > 1 for row in batch)
    width = max(sum(len(e.input_ids) for e in row) for row in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(batch), width), dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, row in enumerate(batch):
        start = 0
        for example in row:
            end = start + len(example.input_ids)
            input_ids[r, start:end] = torch.tensor(example.input_ids)
            labels[r, start:end] = torch.tensor(example.labels)
            labels[r, start] = IGNORE_INDEX  # never predict an example's first token from the previous one
            position_ids[r, start:end] = torch.arange(end - start)
            attention_mask[r, start:end] = 1
            start = end
        position_ids[r, start:] = torch.arange(width - start)  # padding: its own block, labels ignored
    if packed:
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
