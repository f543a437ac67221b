"""Training throughput: mc16k against TRL's SFTTrainer + peft and a plain torch loop, everything held equal.

    python benchmarks/train_throughput.py                     # tiny random Llama: 4 variants x fp32, NF4 x 3
    python benchmarks/train_throughput.py --model smollm2     # SmolLM2-135M-Instruct (slower: see docs/performance.md)
    python benchmarks/train_throughput.py --variants mc16k plain --precision fp32 --repeats 1   # one quick pair

Held equal: the base model and its loader, the same seeded MentalChat16K-shaped rows encoded by mc16k's one
formatting function (same token ids, same response-only labels), LoRA r=64 / alpha 16 / dropout 0.1 on every
linear layer, AdamW at lr 2e-4, max length 1024, about 4 examples per optimizer step (4 padded rows, or 2
packed rows of up to 1,024 tokens), fp32 or 4-bit NF4 with fp32 compute, the same torch threads.

Variants (each in a fresh process, in turns A B C A B C ...):
  trl         TRL SFTTrainer + peft_config, TRL's defaults (gradient checkpointing on, padding, no grouping)
  trl-nogc    the same with gradient checkpointing off
  plain       a plain torch loop over transformers + peft: shuffled, padded to the longest, no checkpointing
  mc16k       mc16k's Lightning module and datamodule as train.py builds them (its defaults, checkpointing on)
  mc16k-nogc  the same with train.gradient_checkpointing=false
Extra mc16k settings: mc16k[+nogc]:key=value,key=value (Hydra overrides of conf/train.yaml, e.g.
``mc16k-nogc:data.batching=length_grouped,data.micro_batch_size=4``).

Throughput is real (non-pad) tokens over whole optimizer steps (data, forward, backward, clipping, optimizer,
logging), timed from the end of the last warm-up step to the end of the last step. Each run records the
CPU time the rest of the machine used during its timed window (``other load``, in cores), since this
machine is shared, and its peak RSS (the whole process: loading included).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
DEFAULT_VARIANTS = ["trl", "plain", "mc16k", "mc16k-nogc"]  # add trl-nogc with --variants

# MentalChat16K's Table 1 (average words): interview input 69.94 / output 235.85, synthetic 111.24 / 363.94;
# the paper's row counts set the mix (6,338 interview, 9,775 synthetic).
TABLE1_WORDS = {"interview": (69.94, 235.85), "synthetic": (111.24, 363.94)}
SOURCE_ROWS = {"interview": 6338, "synthetic": 9775}
LENGTH_SPREAD = 0.45  # sigma of the log-normal word counts (coefficient of variation ~0.47)
HUB_FILES = {"interview": "Interview_Data_6K.csv", "synthetic": "Synthetic_Data_10K.csv"}
WORDS = (
    "i my me feel feeling anxious tired worried sad lonely angry overwhelmed stressed guilty afraid hopeless "
    "mother father husband wife son daughter friend family partner boss work job school home sleep night "
    "day week month year always never sometimes often again because but and or so when then after before "
    "talk listen help support care therapy counselor doctor medication appointment plan goal step small "
    "try can cannot want need know think understand remember forget change stop start keep lose find "
    "it sounds like you are carrying a lot right now your feelings valid understandable important "
    "consider reaching out to licensed professional trusted person breathing exercise walk routine "
    "dementia diagnosis caregiver autism meltdown panic attack grief loss divorce argument trust "
    "the a an of to in on at for with about from is was have has been be not very really just"
).split()


def table1_rows(n_rows: int, seed: int) -> list[dict[str, str]]:
    """``n_rows`` conversations with MentalChat16K's per-source word counts, mix and a realistic spread."""
    rng = random.Random(seed)
    total = sum(SOURCE_ROWS.values())
    rows = []
    for _ in range(n_rows):
        source = "interview" if rng.random() < SOURCE_ROWS["interview"] / total else "synthetic"
        texts = []
        for mean in TABLE1_WORDS[source]:
            # log-normal with the table's mean: mu = ln(mean) - sigma^2 / 2
            words = max(8, round(rng.lognormvariate(_log_mu(mean), LENGTH_SPREAD)))
            texts.append(" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + ".")
        rows.append({"source": source, "input": texts[0], "output": texts[1]})
    return rows


def _log_mu(mean: float) -> float:
    import math

    return math.log(mean) - LENGTH_SPREAD**2 / 2


def write_dataset(directory: Path, rows: list[dict[str, str]], instruction: str) -> Path:
    """The rows as the hub's two CSV files (so mc16k reads them exactly as it reads MentalChat16K)."""
    directory.mkdir(parents=True, exist_ok=True)
    for source, name in HUB_FILES.items():
        with open(directory / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["instruction", "input", "output"])
            for row in rows:
                if row["source"] == source:
                    writer.writerow([instruction, row["input"], row["output"]])
    return directory


# ---------------------------------------------------------------------------------------------- the worker


@dataclass
class StepClock:
    """Per optimizer step: end time, real and processed tokens, and the machine's busy CPU seconds."""

    ends: list[float] = field(default_factory=list)
    real: list[int] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    machine_busy: list[float] = field(default_factory=list)
    own_cpu: list[float] = field(default_factory=list)

    def step_done(self, real: int, processed: int) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # a step ends when the GPU has finished it, not when it was queued
        self.ends.append(time.perf_counter())
        self.real.append(real)
        self.processed.append(processed)
        self.machine_busy.append(machine_busy_seconds())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.own_cpu.append(usage.ru_utime + usage.ru_stime)

    def summary(self, warmup: int) -> dict[str, float]:
        """Throughput and other load over the steps after ``warmup``."""
        if len(self.ends) <= warmup:
            raise RuntimeError(f"only {len(self.ends)} steps ran; need more than the {warmup} warm-up steps")
        seconds = self.ends[-1] - self.ends[warmup - 1]
        real = sum(self.real[warmup:])
        others = (self.machine_busy[-1] - self.machine_busy[warmup - 1]) - (
            self.own_cpu[-1] - self.own_cpu[warmup - 1]
        )
        step_seconds = [b - a for a, b in zip(self.ends[warmup - 1 : -1], self.ends[warmup:], strict=True)]
        return {
            "tokens_per_s": real / seconds,
            "timed_steps": len(self.ends) - warmup,
            "timed_seconds": seconds,
            "real_tokens": real,
            "token_efficiency": real / sum(self.processed[warmup:]),
            "median_step_s": statistics.median(step_seconds),
            "other_load_cores": max(0.0, others / seconds),
        }


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, everything but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        ticks = [int(value) for value in handle.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK


def real_tokens(batch: dict[str, Any], pad_id: int) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int((batch["input_ids"] != pad_id).sum())


def model_spec(name: str) -> dict[str, Any]:
    """ModelConfig fields of the benchmark model (the tiny one is built on first use under .cache/); any
    other name is a local model dir (benchmarks/gpu_check.py's random Mistral)."""
    if name not in ("tiny", "smollm2"):
        return {
            "name": Path(name).name, "name_or_path": name, "gguf_file": None, "prompt_format": "chat_template",
            "pad_token": "<unk>", "max_context": 4096, "dtype": "bfloat16",
        }  # fmt: skip
    if name == "smollm2":
        from mc16k.models.smollm2 import SMOLLM2_GGUF_FILE, smollm2_dir

        return {
            "name": "smollm2-135m-instruct", "name_or_path": smollm2_dir(), "gguf_file": SMOLLM2_GGUF_FILE,
            "prompt_format": "chat_template", "pad_token": "<|endoftext|>", "max_context": 8192,
            "dtype": "float32",
        }  # fmt: skip
    return {
        "name": "tiny-bench", "name_or_path": str(build_bench_tiny_model()), "gguf_file": None,
        "prompt_format": "chat_template", "pad_token": "<unk>", "max_context": 4096, "dtype": "float32",
    }  # fmt: skip


def build_bench_tiny_model() -> Path:
    """A random 256-wide, 4-layer Llama whose BPE (2,048 tokens) is trained on the benchmark's words and the
    counseling instruction, so an example has about as many tokens as words, as with SmolLM2's tokenizer.

    Its LM head is small (2,048 outputs, against SmolLM2's 49,152): figures from it understate what the
    head and the cross-entropy cost a real model.
    """
    out = CACHE / "bench-tiny-llama"
    if (out / "config.json").is_file():
        return out
    import torch
    from omegaconf import OmegaConf
    from transformers import LlamaConfig, LlamaForCausalLM

    from mc16k.models.tiny import build_tiny_tokenizer

    system = OmegaConf.load(ROOT / "conf/prompt/counseling.yaml").system
    tokenizer = build_tiny_tokenizer(
        vocab_size=2048, corpus=[" ".join(WORDS), system, " ".join(WORDS).title()]
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=640, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    tmp = out.with_name(out.name + f".partial-{os.getpid()}")
    LlamaForCausalLM(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def encoded_examples(job: dict[str, Any], model_cfg: Any, tokenizer: Any) -> list[Any]:
    """The rows as mc16k encodes them (one formatting function): what TRL and the plain loop train on too."""
    from omegaconf import OmegaConf

    from mc16k.data.config import DataConfig, PromptConfig
    from mc16k.data.formatting import encode_example
    from mc16k.data.prepare import prepare_rows

    prompt = OmegaConf.merge(
        OmegaConf.structured(PromptConfig), OmegaConf.load(ROOT / "conf/prompt/counseling.yaml")
    )
    data_cfg = DataConfig(name="bench", root=job["data_dir"], hub_repo=None, val_fraction=0.0)
    rows = prepare_rows(data_cfg, prompt.system).train
    return [
        encode_example(tokenizer, model_cfg, prompt.system, row.input, row.output, job["max_seq_len"])
        for row in rows
    ]


def device_map() -> dict[str, Any]:
    import torch

    return {"": 0} if torch.cuda.is_available() else {"": "cpu"}


def load_peft_model(model_cfg: Any, quant_cfg: Any, lora_cfg: Any, gradient_checkpointing: bool) -> Any:
    """The base through mc16k's loader, then peft directly (what a transformers + peft user writes)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from mc16k.models.loading import load_base_model
    from mc16k.models.lora import peft_lora_config

    base = load_base_model(model_cfg, quant_cfg, device_map=device_map(), cache_dir=CACHE)
    if quant_cfg.enabled:
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=gradient_checkpointing)
    model = get_peft_model(base, peft_lora_config(lora_cfg))
    model.train()
    return model


def run_plain(job: dict[str, Any], configs: dict[str, Any], clock: StepClock) -> None:
    """A plain loop: shuffled examples, padded to the longest of each batch, loss, backward, clip, step."""
    import torch

    from mc16k.schema import IGNORE_INDEX

    tokenizer, examples = configs["tokenizer"], configs["examples"]
    model = load_peft_model(
        configs["model"], configs["quant"], configs["lora"], gradient_checkpointing=job.get("plain_gc", False)
    )
    trainable, total = model.get_nb_trainable_parameters()
    configs["trainable_percent"] = 100.0 * trainable / total
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=job["lr"])
    order = list(range(len(examples)))
    random.Random(job["seed"]).shuffle(order)
    batch_size = job["micro_batch_examples"]
    for step in range(job["warmup"] + job["steps"]):
        batch = [examples[i] for i in order[step * batch_size : (step + 1) * batch_size]]
        width = max(len(e.input_ids) for e in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):
            input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
            labels[row, : len(example.labels)] = torch.tensor(example.labels)
            attention_mask[row, : len(example.input_ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        with autocast:
            loss = model(**{k: v.to(device) for k, v in inputs.items()}, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step_done(int(attention_mask.sum()), input_ids.numel())


def run_trl(
    job: dict[str, Any], configs: dict[str, Any], clock: StepClock, gradient_checkpointing: bool
) -> None:
    """TRL's SFTTrainer with a peft_config over the same encoded examples (input ids and response labels)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from mc16k.models.loading import load_base_model
    from mc16k.models.lora import peft_lora_config

    examples = configs["examples"]
    dataset = Dataset.from_dict(
        {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
    )
    base = load_base_model(configs["model"], configs["quant"], device_map=device_map(), cache_dir=CACHE)

    class Timed(SFTTrainer):
        def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            self.step_tokens = (real_tokens(inputs, -1), inputs["input_ids"].numel())
            return super().training_step(model, inputs, num_items_in_batch)

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.step_done(*trainer.step_tokens)

    with tempfile.TemporaryDirectory() as output_dir:
        args = SFTConfig(
            output_dir=output_dir,
            per_device_train_batch_size=job["micro_batch_examples"],
            gradient_accumulation_steps=1,
            max_steps=job["warmup"] + job["steps"],
            learning_rate=job["lr"],
            max_length=job["max_seq_len"],
            gradient_checkpointing=gradient_checkpointing,
            bf16=False,  # fp32 like the others (TRL's bf16 default is a GPU choice)
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            seed=job["seed"],
            disable_tqdm=True,
        )
        trainer = Timed(
            model=base,
            args=args,
            train_dataset=dataset,
            processing_class=configs["tokenizer"],
            peft_config=peft_lora_config(configs["lora"]),
            callbacks=[Clock()],
        )
        trainer.train()


def run_mc16k(job: dict[str, Any], configs: dict[str, Any], clock: StepClock, overrides: list[str]) -> None:
    """mc16k's training step as train.py builds it: composed config, trainer, LoRA model, module, datamodule."""
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from mc16k.config import register_configs
    from mc16k.data.datamodule import MentalChatDataModule
    from mc16k.models.module import CausalLMFineTuner
    from mc16k.tasks.train import build_model, build_trainer

    register_configs()
    spec = configs["model_spec"]
    with tempfile.TemporaryDirectory() as run_dir:
        composed = [
            "data=sample", f"data.root={job['data_dir']}", "data.val_fraction=0.0", f"data.max_seq_len={job['max_seq_len']}",
            "trainer=gpu" if job.get("device") == "cuda" else "trainer=cpu", f"trainer.max_steps={job['warmup'] + job['steps']}", "trainer.enable_progress_bar=false",
            "+trainer.limit_val_batches=0", "logger=none", f"paths.output_dir={run_dir}", f"seed={job['seed']}",
            "train.accumulate_grad_batches=1", "train.validate_base=false", f"train.optimizer.lr={job['lr']}",
            "quant=nf4" if job["precision"] == "nf4" else "quant=none", f"quant.compute_dtype={compute_dtype(job)}",
            *(f"model.{key}={'null' if value is None else repr(value)}" for key, value in spec.items()),
            *overrides,
        ]  # fmt: skip
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=composed)
        tokenizer = configs["tokenizer"]
        datamodule = MentalChatDataModule(cfg.data, cfg.prompt, cfg.model, tokenizer)
        datamodule.setup("fit")
        if any(tokenizer.pad_token_id in e.input_ids for e in datamodule.train_split.examples):
            raise RuntimeError(
                "the pad token occurs in the examples: real tokens of packed rows cannot be counted"
            )
        L.seed_everything(cfg.seed)
        trainer = build_trainer(cfg, Path(run_dir), logger=None)

        class Clock(L.Callback):
            def on_train_batch_end(
                self, trainer: Any, module: Any, outputs: Any, batch: Any, index: int
            ) -> None:
                clock.step_done(real_tokens(batch, tokenizer.pad_token_id), batch["input_ids"].numel())

        trainer.callbacks.append(Clock())
        model, share = build_model(cfg, trainer, len(tokenizer))
        configs["trainable_percent"] = share.percent
        module = CausalLMFineTuner(
            model, instantiate(cfg.train.optimizer), instantiate(cfg.train.scheduler), tokenizer.pad_token_id
        )
        trainer.fit(module, datamodule=datamodule)
        configs["resolved"] = {
            "batching": str(cfg.data.batching.value), "micro_batch_size": cfg.data.micro_batch_size,
            "gradient_checkpointing": cfg.train.gradient_checkpointing,
        }  # fmt: skip


def compute_dtype(job: dict[str, Any]) -> str:
    """bf16 on a GPU (QLoRA's compute dtype); fp32 on CPU, where bitsandbytes' 4-bit matmul is faster in it."""
    return "bfloat16" if job.get("device") == "cuda" else "float32"


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One variant in this (fresh) process; returns its measurement."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import torch
    from omegaconf import OmegaConf

    from mc16k.data.tokenizer import load_tokenizer
    from mc16k.models.config import LoraConfig, QuantConfig
    from mc16k.schema import ModelConfig

    logging.disable(logging.WARNING)
    torch.set_num_threads(job["threads"])
    spec = model_spec(job["model"])
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), spec)
    quant = OmegaConf.structured(
        QuantConfig(enabled=job["precision"] == "nf4", compute_dtype=compute_dtype(job))
    )
    tokenizer = load_tokenizer(model_cfg)
    configs: dict[str, Any] = {
        "model": model_cfg, "model_spec": spec, "quant": quant, "lora": OmegaConf.structured(LoraConfig()),
        "tokenizer": tokenizer,
    }  # fmt: skip
    clock = StepClock()
    name, _, extra = job["variant"].partition(":")
    overrides = [item for item in extra.split(",") if item]
    if name in ("trl", "trl-nogc", "plain"):
        configs["examples"] = encoded_examples(job, model_cfg, tokenizer)
    if name == "plain":
        run_plain(job, configs, clock)
    elif name in ("trl", "trl-nogc"):
        run_trl(job, configs, clock, gradient_checkpointing=name == "trl")
    elif name in ("mc16k", "mc16k-nogc"):
        packing_rows = [
            f"data.micro_batch_size={job['micro_batch_examples'] // 2}"
        ]  # 2 rows of 1024 ~ 4 examples
        gc = ["train.gradient_checkpointing=false"] if name == "mc16k-nogc" else []
        run_mc16k(job, configs, clock, packing_rows + gc + overrides)
    else:
        raise SystemExit(f"unknown variant {job['variant']!r}")
    peak_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if torch.cuda.is_available():
        configs["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return {
        "trainable_percent": configs.get("trainable_percent"),
        "peak_gpu_gib": configs.get("peak_gpu_gib"),
        **clock.summary(job["warmup"]),
        "peak_rss_gib": peak_rss_gib,
        "settings": configs.get("resolved", {}),
    }


# ---------------------------------------------------------------------------------------------- the driver


def run_in_fresh_process(job: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    spec_path = work_dir / "job.json"
    spec_path.write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(spec_path)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(
            f"{job['variant']} ({job['precision']}) failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with open("/proc/loadavg", encoding="ascii") as handle:
        result["loadavg_1min"] = float(handle.read().split()[0])
    result["process_seconds"] = time.perf_counter() - started
    return result


def print_report(results: list[dict[str, Any]], variants: list[str], precisions: list[str]) -> dict[str, Any]:
    """The table (median and range over repeats) and the ratios the goals are stated in."""
    medians: dict[tuple[str, str], float] = {}
    print(
        f"\n{'precision':<9} {'variant':<40} {'real tok/s':>10} {'range':>15} {'real/proc':>9} "
        f"{'peak RSS':>9} {'other load':>10}"
    )
    for precision in precisions:
        for variant in variants:
            runs = [r for r in results if r["variant"] == variant and r["precision"] == precision]
            speeds = [r["tokens_per_s"] for r in runs]
            medians[precision, variant] = statistics.median(speeds)
            print(
                f"{precision:<9} {variant:<40} {medians[precision, variant]:>10.1f} "
                f"{min(speeds):>7.1f}-{max(speeds):<7.1f} {statistics.median(r['token_efficiency'] for r in runs):>9.3f} "
                f"{max(r['peak_rss_gib'] for r in runs):>7.2f} G {statistics.median(r['other_load_cores'] for r in runs):>8.2f} c"
            )
    ratios = {}
    pairs = [("mc16k", "trl"), ("mc16k-nogc", "trl-nogc"), ("mc16k-nogc", "plain"), ("mc16k", "plain")]
    print()
    for precision in precisions:
        for ours, theirs in pairs:
            if (precision, ours) in medians and (precision, theirs) in medians:
                ratio = medians[precision, ours] / medians[precision, theirs]
                ratios[f"{precision} {ours} / {theirs}"] = ratio
                print(f"{precision:<5} {ours:>12} / {theirs:<9} {ratio:5.2f}x")
    print("goals: mc16k / trl >= 2.0x (equal checkpointing), mc16k-nogc / plain >= 1.3x")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--precision", nargs="+", choices=["fp32", "nf4"], default=["fp32", "nf4"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps first")
    parser.add_argument("--rows", type=int, default=256, help="MentalChat16K-shaped rows written (seeded)")
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch-examples", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker.read_text()))))
        return
    if args.warmup < 1:
        parser.error("--warmup must be >= 1: the timed window starts at the end of a warm-up step")

    from omegaconf import OmegaConf

    system = OmegaConf.load(ROOT / "conf/prompt/counseling.yaml").system
    results = []
    with tempfile.TemporaryDirectory(prefix="mc16k-bench-") as tmp:
        work_dir = Path(tmp)
        data_dir = write_dataset(work_dir / "data", table1_rows(args.rows, args.seed), system)
        common = {
            "model": args.model, "data_dir": str(data_dir), "steps": args.steps, "warmup": args.warmup,
            "max_seq_len": args.max_seq_len, "micro_batch_examples": args.micro_batch_examples,
            "threads": args.threads, "seed": args.seed, "lr": 2e-4,
        }  # fmt: skip
        print(
            f"model={args.model} rows={args.rows} max_seq_len={args.max_seq_len} ~{args.micro_batch_examples} "
            f"examples/step, {args.warmup}+{args.steps} steps, {args.repeats} repeats, {args.threads} threads"
        )
        for repeat in range(args.repeats):
            for precision in args.precision:
                for variant in args.variants:
                    job = {**common, "variant": variant, "precision": precision}
                    result = {**job, **run_in_fresh_process(job, work_dir), "repeat": repeat}
                    results.append(result)
                    print(
                        f"  [{repeat + 1}/{args.repeats}] {precision} {variant:<32} {result['tokens_per_s']:8.1f} tok/s "
                        f"(other load {result['other_load_cores']:.2f} cores, {result['process_seconds']:.0f} s)",
                        flush=True,
                    )
    ratios = print_report(results, args.variants, args.precision)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
