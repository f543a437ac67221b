"""The HF engine: left-padded batches answer like single prompts, seeds make sampling reproducible per row."""

from __future__ import annotations

import re

import pytest
import torch
from infer_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from transformers import AutoModelForCausalLM, AutoTokenizer

from mc16k.inference.config import GenerationConfig
from mc16k.inference.engines.hf import HFEngine, first_stop, left_pad
from mc16k.inference.sampling import question_seed, round_seeds

TEXTS = [
    "I feel anxious",
    "My mother has dementia and caring for her every day leaves me exhausted and guilty",
    "hello",
    "I cannot sleep at night",
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.pad_token = "<unk>"
    return HFEngine(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tokenizer)


@pytest.fixture(scope="module")
def prompts(engine):
    return [engine.tokenizer(text).input_ids for text in TEXTS]


def test_left_padding_puts_every_prompt_against_the_right_edge():
    ids, mask = left_pad([[5, 6, 7], [9]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 7], [0, 0, 9]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_greedy_batch_equals_one_at_a_time(engine, prompts):
    params = GenerationConfig(do_sample=False, max_new_tokens=12)
    batched = engine.generate(prompts, [0] * len(prompts), params)
    single = [engine.generate([p], [0], params)[0] for p in prompts]
    assert batched == single
    assert all(c.completion_tokens == 12 and c.finish_reason == "length" and c.text for c in batched)


def test_sampling_depends_on_the_row_seed_not_on_the_batch(engine, prompts):
    params = GenerationConfig(max_new_tokens=12)
    seeds = [question_seed(42, qid) for qid in range(len(prompts))]
    batched = engine.generate(prompts, seeds, params)
    assert batched == [engine.generate([p], [s], params)[0] for p, s in zip(prompts, seeds, strict=True)]
    assert batched[::-1] == engine.generate(prompts[::-1], seeds[::-1], params)
    other_seeds = engine.generate(prompts, [s + 1 for s in seeds], params)
    assert batched != other_seeds


def test_tiny_top_p_keeps_only_the_top_token_so_sampling_becomes_greedy(engine, prompts):
    greedy = engine.generate(prompts, [1] * 4, GenerationConfig(do_sample=False, max_new_tokens=8))
    nucleus = engine.generate(prompts, [1, 2, 3, 4], GenerationConfig(top_p=1e-6, max_new_tokens=8))
    assert nucleus == greedy


def test_round_seeds_are_distinct_and_checked():
    assert round_seeds(42, 5, None) == [42, 43, 44, 45, 46]
    assert round_seeds(42, 2, [7, 9]) == [7, 9]
    with pytest.raises(ValueError, match="distinct"):
        round_seeds(42, 2, [7, 7])
    with pytest.raises(ValueError, match="infer.rounds=3"):
        round_seeds(42, 3, [1, 2])
    assert question_seed(42, 1) != question_seed(43, 1) != question_seed(42, 2)


def test_vllm_engine_imports_only_when_installed():
    pytest.importorskip("vllm")
    from mc16k.inference.engines.vllm import VLLMEngine

    assert callable(VLLMEngine.generate)


def test_a_stop_string_ends_generation_and_is_cut_from_the_answer(engine, prompts):
    free = engine.generate(prompts[:1], [0], GenerationConfig(do_sample=False, max_new_tokens=24))[0]
    stop = re.findall(r"[a-z]{3}", free.text[4:])[0]  # plain letters: a string tokens can spell
    params = GenerationConfig(do_sample=False, max_new_tokens=24, stop_strings=["never there", stop])
    (stopped,) = engine.generate(prompts[:1], [0], params)
    assert stopped.finish_reason == "stop" and stop not in stopped.text
    assert free.text.startswith(stopped.text) and stopped.completion_tokens < free.completion_tokens
    assert first_stop("abc USER: x ### Input:", ["### Input:", "USER:"]) == 4
    assert first_stop("no marker", ["USER:"]) is None
