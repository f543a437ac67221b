"""Batch plans and collation: sequence packing and length-grouped padding, both measured in token efficiency.

A plan is a list of micro-batches; a micro-batch is a list of rows; a row is a list of example indices. A
micro-batch holds ``data.micro_batch_size`` examples in every mode. Packing puts several of them in a row
(best-fit decreasing into ``max_seq_len``) and marks each example's boundaries
with ``position_ids`` restarting at 0 and NO attention mask: transformers builds the block-diagonal mask
from the position ids, so no example attends to another. It does so only when the forward pass has no KV
cache: run the model with ``use_cache=False`` (or ``model.config.use_cache = False``), otherwise packed
examples silently attend to each other, as they would under an all-ones attention mask. Length-grouped padding puts one example per row and pads to
the batch's longest. Token efficiency = real tokens / tokens processed (rows × longest row, summed over batches).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

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
    """Micro-batches of ``micro_batch_size`` examples of similar length, in every batching mode.

    Examples are sorted by length (ties broken by ``seed``) and cut into consecutive groups, so a group
    holds similar lengths; only the group of the longest examples may be smaller. Packing then lays a
    group's examples out in rows of at most ``max_seq_len`` tokens (best-fit decreasing); length grouping
    gives each example its own row. The layout never changes how many examples a micro-batch holds, so the
    examples per optimizer step are micro-batch x accumulation x processes.
    """
    if micro_batch_size < 1:
        raise BadInputError(f"data.micro_batch_size must be >= 1, got {micro_batch_size}")
    tie_break = random.Random(seed)
    keys = {i: (lengths[i], tie_break.random()) for i in range(len(lengths))}
    order = sorted(range(len(lengths)), key=keys.__getitem__)
    plan: BatchPlan = []
    for start in range(0, len(order), micro_batch_size):
        group = order[start : start + micro_batch_size]
        if Batching(batching) is Batching.packing:
            rows = [[group[i] for i in row] for row in pack_rows([lengths[i] for i in group], max_seq_len)]
        else:
            rows = [[i] for i in group]
        plan.append(rows)
    return plan


def examples_in(batch: list[list[int]]) -> int:
    """Examples in one planned micro-batch (however its rows lay them out)."""
    return sum(len(row) for row in batch)


@dataclass(frozen=True)
class ScheduledMicroBatch:
    """One micro-batch of one process's epoch, with what the loss of its optimizer step divides by."""

    index: int  # into the plan
    step_target_tokens: int  # target tokens of its whole optimizer step: every process, every micro-batch
    counted: bool = True  # False: a stand-in that evens out the processes' last step; it adds no loss


def epoch_schedule(
    plan: BatchPlan, target_tokens: Sequence[int], epoch: int, seed: int, accumulation: int, processes: int
) -> list[list[ScheduledMicroBatch]]:
    """Each process's micro-batches for one epoch, a pure function of (plan, seed, epoch).

    The full micro-batches come in an order drawn from ``seed + epoch``, any smaller one last, so every
    optimizer step but the epoch's last has micro-batch x ``accumulation`` x ``processes`` examples. Step k
    takes the next ``accumulation x processes`` micro-batches, the j-th of them going to process
    ``j % processes``. Where the last step does not divide evenly, the processes short of one get a stand-in
    whose labels are ignored, since every process must run the same number of micro-batches.
    """
    import torch

    sizes = [examples_in(batch) for batch in plan]
    largest = max(sizes, default=0)
    full = [i for i, size in enumerate(sizes) if size == largest]
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    order = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    order += [i for i, size in enumerate(sizes) if size != largest]
    per_process: list[list[ScheduledMicroBatch]] = [[] for _ in range(processes)]
    per_step = accumulation * processes
    for start in range(0, len(order), per_step):
        step = order[start : start + per_step]
        tokens = sum(target_tokens[i] for i in step)
        rounds = -(-len(step) // processes)
        for j in range(rounds * processes):
            index, counted = (step[j], True) if j < len(step) else (step[0], False)
            per_process[j % processes].append(ScheduledMicroBatch(index, tokens, counted))
    return per_process


def token_efficiency(lengths: Sequence[int], plan: BatchPlan) -> float:
    """Real tokens / processed tokens (each batch processes rows × its longest row)."""
    real = processed = 0
    for batch in plan:
        row_lengths = [sum(lengths[i] for i in row) for row in batch]
        real += sum(row_lengths)
        processed += len(batch) * max(row_lengths)
    return real / processed if processed else 0.0


def target_tokens(example: EncodedExample) -> int:
    """Tokens of an example the loss is taken on once collated (its first token is never a target)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)


def collate_scheduled(
    item: tuple[list[list[EncodedExample]], ScheduledMicroBatch], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """A training micro-batch: ``collate`` plus ``examples`` (0 for a stand-in, whose labels are all
    ignored) and ``step_target_tokens``, the divisor of its optimizer step's token-mean loss."""
    batch, scheduled = item
    tensors = collate(batch, pad_token_id)
    if not scheduled.counted:
        tensors["labels"].fill_(IGNORE_INDEX)
    tensors["examples"] = torch.tensor(sum(len(row) for row in batch) if scheduled.counted else 0)
    tensors["step_target_tokens"] = torch.tensor(scheduled.step_target_tokens)
    return tensors


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
