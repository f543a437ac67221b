"""Batched vs one-at-a-time answering: same model, same questions, same seeds, same answers.

    python benchmarks/infer_batching.py                      # tiny random Llama (seconds)
    python benchmarks/infer_batching.py --model smollm2      # SmolLM2-135M-Instruct (GGUF, fp32)

Prompts are the real benchmark's first questions encoded exactly as infer.py does (encode_prompt with the
counseling instruction, cut to --max-prompt-tokens) and sorted by length, as the runner sorts them. Because
sampling is seeded per question, both modes give the same answers up to float noise from padding (exactly
the same on the tiny model; SmolLM2 can drift after a near-tie); the script reports whether they match.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from mc16k.data.formatting import encode_prompt
from mc16k.data.tokenizer import load_tokenizer
from mc16k.inference.benchmark import read_questions
from mc16k.inference.config import GenerationConfig
from mc16k.inference.engines.hf import HFEngine
from mc16k.inference.sampling import question_seed
from mc16k.models.config import QuantConfig
from mc16k.models.loading import load_for_inference
from mc16k.models.smollm2 import SMOLLM2_GGUF_FILE, smollm2_dir
from mc16k.models.tiny import build_tiny_model
from mc16k.paths import resource_path
from mc16k.schema import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = OmegaConf.load(ROOT / "conf" / "prompt" / "counseling.yaml").system


def model_config(name: str, work_dir: str) -> ModelConfig:
    common = {"prompt_format": "chat_template", "dtype": "float32", "max_context": 2048}
    if name == "tiny":
        spec = {"name": "tiny", "name_or_path": str(build_tiny_model(work_dir)), "pad_token": "<unk>"}
    else:
        spec = {"name": "smollm2", "name_or_path": smollm2_dir(), "gguf_file": SMOLLM2_GGUF_FILE}
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), {**common, **spec})


def timed(engine: HFEngine, prompts, seeds, params, batch_size: int):
    started = time.perf_counter()
    completions = []
    for start in range(0, len(prompts), batch_size):
        completions += engine.generate(
            prompts[start : start + batch_size], seeds[start : start + batch_size], params
        )
    return completions, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--questions", type=Path, default=Path(resource_path("benchmark/evalq200_question.jsonl")))
    parser.add_argument("--n", type=int, default=32, help="questions answered in each mode")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-prompt-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = torch's default")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as work_dir:
        model_cfg = model_config(args.model, work_dir)
        tokenizer = load_tokenizer(model_cfg)
        quant = OmegaConf.structured(QuantConfig(enabled=False))
        engine = HFEngine(load_for_inference(model_cfg, quant, cache_dir=ROOT / ".cache"), tokenizer)
        questions = read_questions(args.questions)[: args.n]
        encoded = [
            encode_prompt(tokenizer, model_cfg, SYSTEM, q.text, args.max_prompt_tokens) for q in questions
        ]
        order = sorted(range(len(questions)), key=lambda i: -len(encoded[i].input_ids))
        prompts = [encoded[i].input_ids for i in order]
        seeds = [question_seed(42, questions[i].question_id) for i in order]
        params = GenerationConfig(max_new_tokens=args.max_new_tokens)

        engine.generate(prompts[:2], seeds[:2], params)  # warm-up
        batched, batched_s = timed(engine, prompts, seeds, params, args.batch_size)
        single, single_s = timed(engine, prompts, seeds, params, 1)

    tokens = sum(c.completion_tokens for c in batched)
    print(
        f"model={args.model} questions={len(prompts)} prompt tokens<={args.max_prompt_tokens} "
        f"max_new_tokens={args.max_new_tokens} torch threads={torch.get_num_threads()}"
    )
    print(
        f"one at a time : {single_s:7.2f} s  {sum(c.completion_tokens for c in single) / single_s:8.1f} tok/s"
    )
    print(f"batch of {args.batch_size:<4} : {batched_s:7.2f} s  {tokens / batched_s:8.1f} tok/s")
    print(f"speed-up      : {single_s / batched_s:.1f}x   identical answers: {batched == single}")


if __name__ == "__main__":
    main()
