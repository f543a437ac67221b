"""Batching: packing is exact (a packed example's loss equals its solo loss), padding is exact, and both
report token efficiency."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from mc16k.data.batching import collate, pack_rows, plan_batches, token_efficiency
from mc16k.data.config import Batching, DataConfig
from mc16k.data.formatting import encode_example
from mc16k.data.prepare import prepare_rows
from mc16k.data.tokenizer import load_tokenizer
from mc16k.models.tiny import build_tiny_model
from mc16k.paths import resource_path
from mc16k.schema import IGNORE_INDEX, ModelConfig, PromptFormat

SYSTEM = "You are a helpful mental health counselling assistant."


def test_pack_rows_places_every_example_once_within_capacity():
    lengths = [700, 300, 512, 100, 1024, 20, 400, 600, 90]
    rows = pack_rows(lengths, capacity=1024)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 1024 for row in rows)
    assert len(rows) == 4  # 3746 tokens need at least 4 rows of 1024
    with pytest.raises(ValueError, match="longer than the packing capacity"):
        pack_rows([1025], capacity=1024)


def test_token_efficiency_counts_padding_per_batch():
    lengths = [10, 6, 8, 8]
    assert token_efficiency(lengths, [[[0], [1]], [[2], [3]]]) == pytest.approx(32 / 36)
    assert token_efficiency(lengths, [[[0, 1], [2, 3]]]) == pytest.approx(1.0)


def test_length_grouping_beats_naive_order():
    lengths = [50, 900, 60, 880, 70, 910, 40, 890]
    naive = [[[i], [i + 1]] for i in range(0, len(lengths), 2)]
    grouped = plan_batches(lengths, Batching.length_grouped, micro_batch_size=2, max_seq_len=1024, seed=0)
    assert token_efficiency(lengths, grouped) > 0.9 > token_efficiency(lengths, naive)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """A tiny model runs fastest on one thread; two threads on a busy 2-core box run ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["llama", "mistral"])
def tiny_setup(request, tiny_model_dir, tmp_path_factory):
    """Tiny random model (fp32, SDPA) and a dozen sample conversations of varied length."""
    model_dir = (
        tiny_model_dir
        if request.param == "llama"
        else build_tiny_model(tmp_path_factory.mktemp("tiny-mistral"), arch="mistral")
    )
    model_cfg = ModelConfig(
        name="tiny", name_or_path=str(model_dir), prompt_format=PromptFormat.chat_template, pad_token="<unk>"
    )
    tokenizer = load_tokenizer(model_cfg)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    rows = prepare_rows(
        DataConfig(name="sample", root=resource_path("data/sample"), val_fraction=0.0), SYSTEM
    )
    examples = [
        encode_example(tokenizer, model_cfg, SYSTEM, row.input[: 40 + 37 * k], row.output[: 60 + 23 * k], 512)
        for k, row in enumerate(rows.train[:12])
    ]
    return model, tokenizer, examples


def per_example_loss_sums(model, batch, plan_rows) -> list[float]:
    """Summed cross-entropy of each example's response tokens, in plan order."""
    with torch.no_grad():
        # no KV cache: transformers derives the packed (block-diagonal) mask only when there is none
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )
    sums = []
    for r, row in enumerate(plan_rows):
        start = 0
        for length in row:
            sums.append(token_loss[r, start : start + length - 1].sum().item())
            start += length
    return sums


def solo_loss_sums(model, examples, pad_id) -> list[float]:
    return [per_example_loss_sums(model, collate([[e]], pad_id), [[len(e.input_ids)]])[0] for e in examples]


@pytest.mark.parametrize("batching", list(Batching))
def test_batched_losses_equal_solo_runs(tiny_setup, batching):
    model, tokenizer, examples = tiny_setup
    lengths = [len(e.input_ids) for e in examples]
    plan = plan_batches(lengths, batching, micro_batch_size=2, max_seq_len=512, seed=0)
    if batching is Batching.packing:
        assert any(len(row) > 1 for batch in plan for row in batch), "the test must pack something"
    batched, order = [], []
    for batch_rows in plan:
        batch = collate([[examples[i] for i in row] for row in batch_rows], tokenizer.pad_token_id)
        assert ("position_ids" in batch) == any(len(row) > 1 for row in batch_rows)
        assert ("attention_mask" in batch) != ("position_ids" in batch)
        batched += per_example_loss_sums(model, batch, [[lengths[i] for i in row] for row in batch_rows])
        order += [i for row in batch_rows for i in row]
    solo = solo_loss_sums(model, [examples[i] for i in order], tokenizer.pad_token_id)
    response_tokens = [sum(label != IGNORE_INDEX for label in examples[i].labels) for i in order]
    for got, want, n in zip(batched, solo, response_tokens, strict=True):
        assert abs(got - want) / n < 1e-4  # per-token mean loss
    assert 0.0 < token_efficiency(lengths, plan) <= 1.0


def test_all_ones_mask_over_a_packed_row_would_leak(tiny_setup):
    """Guards the exactness test itself: the 'wrapped packing' bug is visible at this tolerance."""
    model, tokenizer, examples = tiny_setup
    first, second = examples[0], examples[1]
    batch = collate([[first, second]], tokenizer.pad_token_id)
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    del batch["position_ids"]
    leaked = per_example_loss_sums(model, batch, [[len(first.input_ids), len(second.input_ids)]])[1]
    (solo,) = solo_loss_sums(model, [second], tokenizer.pad_token_id)
    assert abs(leaked - solo) > 1e-3


def test_collate_masks_padding_in_labels_even_when_pad_is_eos(tiny_setup):
    _, tokenizer, examples = tiny_setup
    short, long = sorted(examples[:2], key=lambda e: len(e.input_ids))
    batch = collate([[short], [long]], pad_token_id=tokenizer.eos_token_id)
    n = len(short.input_ids)
    assert batch["labels"][0, n - 1].item() == tokenizer.eos_token_id  # EOS stays a target
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()  # padding never is
    assert batch["attention_mask"][0].sum().item() == n
