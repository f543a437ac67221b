"""One prepared check for a lent H100/H200: QLoRA training steps, a Mixtral footprint, generation throughput.

    pip install --no-deps wheels/bitsandbytes-*.whl        # on the GPU machine, first (see docs/performance.md)
    python benchmarks/gpu_check.py --out results/           # CUDA, under 8 minutes
    python benchmarks/gpu_check.py --cpu-smoke --out /tmp/x # the same code path with tiny shapes on CPU

(a) A Mistral-7B-shaped model with random weights, loaded in 4-bit NF4 through mc16k's loader, length 1024,
    the paper's LoRA (r=64, alpha=16, dropout 0.1, all linear), gradient checkpointing on, about 4 and 8
    examples per step: mc16k's training step (its Lightning module and datamodule, as train.py builds them)
    against a plain transformers + peft loop (bf16 autocast), each in a fresh process. Reports real tokens/s,
    peak GPU memory, the trainable share and model-FLOP utilisation: 4 N FLOP per token (LoRA's forward and
    backward through the frozen base; recomputation by checkpointing not counted) against a measured-style
    bf16 peak of 790 TFLOP/s.
(b) A Mixtral-8x7B-shaped model: its 4-bit footprint as transformers 5 loads it (bitsandbytes quantizes
    nn.Linear layers; the fused 3-D expert weights stay in bf16), and one LoRA step on attention if it fits.
(c) Generation on the 200 benchmark questions with the model of (a): mc16k's HF engine (batched
    ``generate``) against vLLM serving three random LoRA adapters (``LoRARequest``, ``max_lora_rank=64``),
    when vLLM is installed.

Every figure goes to ``<out>/gpu_check.json``; a summary is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_throughput as bench  # noqa: E402  (the same timed loops, data and fresh-process driver)

ROOT = Path(__file__).resolve().parents[1]
BF16_PEAK_FLOPS = 790e12  # H100/H200 SXM dense bf16, as measured by matmul benchmarks (~80 % of the 989 spec)
MISTRAL_7B = dict(
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, vocab_size=32000,
)  # fmt: skip
MIXTRAL_8X7B = {**MISTRAL_7B, "num_local_experts": 8, "num_experts_per_tok": 2}
TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vocab_size=1024,
)  # fmt: skip
TINY_MOE = {**TINY, "num_local_experts": 4, "num_experts_per_tok": 2}


def save_random_model(out: Path, arch: str, shape: dict[str, int], device: str) -> Path:
    """A random-weight model of ``shape`` (bf16 on CUDA, fp32 on CPU) with the benchmark's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    from mc16k.models.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(
        vocab_size=2048, corpus=[" ".join(bench.WORDS), " ".join(bench.WORDS).title()]
    )
    config = MistralConfig(
        **{**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))}, sliding_window=None,
        max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )  # fmt: skip
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # built in its dtype on the device: never a full fp32 copy
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return out


def matmul_params(config: Any) -> int:
    """Parameters a token multiplies through (all but the input embeddings): the N of 4 N FLOP per token."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()


def training_steps(
    model_dir: Path, data_dir: Path, work: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """(a): mc16k and the plain loop, about 4 and 8 examples per step, each run in its own process."""
    from transformers import AutoConfig

    n_params = matmul_params(AutoConfig.from_pretrained(model_dir))
    runs = []
    for examples in (4, 8):
        for variant in ("plain", "mc16k"):
            job = {
                "model": str(model_dir), "data_dir": str(data_dir), "steps": args.steps, "warmup": 2,
                "max_seq_len": 1024, "micro_batch_examples": examples, "threads": os.cpu_count() or 1,
                "seed": 42, "lr": 2e-4, "variant": variant, "precision": "nf4", "device": args.device,
                "plain_gc": True,  # gradient checkpointing on in both (the paper's setting)
            }  # fmt: skip
            result = {**job, **bench.run_in_fresh_process(job, work)}
            result["mfu"] = 4 * n_params * result["tokens_per_s"] / BF16_PEAK_FLOPS
            result["matmul_params"] = n_params
            runs.append(result)
            print(
                f"(a) {variant:<6} ~{examples} examples/step: {result['tokens_per_s']:9.1f} tok/s  "
                f"peak GPU {result['peak_gpu_gib'] or 0:6.2f} GiB  trainable {result['trainable_percent']:.2f} %  "
                f"MFU {100 * result['mfu']:.1f} %",
                flush=True,
            )
    return runs


def mixtral_footprint(shape: dict[str, int], device: str, steps: int) -> dict[str, Any]:
    """(b): 4-bit footprint as loaded (Linear layers NF4, fused experts bf16) and one LoRA step if it fits.

    The step runs on a model built in place in bf16 with LoRA on the attention projections (PEFT refuses
    dropout on fused expert parameters), since the bf16 checkpoint (~90 GiB) would not fit this disk.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(**shape, max_position_embeddings=4096, tie_word_embeddings=False)
    with torch.device("meta"):
        meta = MixtralForCausalLM(config)
    linear = sum(
        m.weight.numel() for m in meta.modules() if isinstance(m, torch.nn.Linear) and m is not meta.lm_head
    )
    total = sum(p.numel() for p in meta.parameters())
    nf4_bits = 4 + 8 / 64 + 32 / (64 * 256)  # 4-bit codes, an 8-bit scale per 64 with double quantization
    footprint = linear * nf4_bits / 8 + (total - linear) * 2
    capacity = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
    result: dict[str, Any] = {
        "total_params": total, "nf4_linear_params": linear, "bf16_params": total - linear,
        "footprint_gib": footprint / 2**30, "card_gib": capacity / 2**30 if capacity else None,
    }  # fmt: skip
    if capacity is not None and footprint > 0.85 * capacity:
        result["step"] = "skipped: the footprint leaves no room for activations on this card"
        return result
    try:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        torch.manual_seed(0)
        with torch.device(device):
            model = MixtralForCausalLM._from_config(config, dtype=dtype)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        lora = LoraConfig(
            r=64, lora_alpha=16, lora_dropout=0.1, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
        )
        model = get_peft_model(model, lora)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        ids = torch.randint(0, shape["vocab_size"], (4, 1024), device=device)
        timings = []
        for _ in range(steps):
            started = time.perf_counter()
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
        result["step"] = {
            "dtype": str(dtype), "tokens_per_s_last": ids.numel() / timings[-1], "loss": float(loss),
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        }  # fmt: skip
    except torch.OutOfMemoryError as error:
        result["step"] = f"out of memory: {str(error).splitlines()[0]}"
    return result


def generation(
    model_dir: Path,
    work: Path,
    n_questions: int,
    max_new_tokens: int,
    batch_size: int,
    max_prompt_tokens: int,
) -> dict[str, Any]:
    """(c): HF batched generate (mc16k's engine, NF4 base) vs vLLM with three random LoRA adapters."""
    import torch
    from omegaconf import OmegaConf
    from peft import get_peft_model

    from mc16k.data.formatting import encode_prompt
    from mc16k.data.tokenizer import load_tokenizer
    from mc16k.inference.benchmark import read_questions
    from mc16k.inference.config import GenerationConfig
    from mc16k.inference.engines.hf import HFEngine
    from mc16k.inference.sampling import question_seed
    from mc16k.models.config import LoraConfig, QuantConfig
    from mc16k.models.loading import load_for_inference
    from mc16k.models.lora import peft_lora_config
    from mc16k.paths import resource_path
    from mc16k.schema import ModelConfig

    spec = bench.model_spec(str(model_dir))
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), spec)
    tokenizer = load_tokenizer(model_cfg)
    system = OmegaConf.load(ROOT / "conf/prompt/counseling.yaml").system
    questions = read_questions(Path(resource_path("benchmark/evalq200_question.jsonl")))[:n_questions]
    prompts = [encode_prompt(tokenizer, model_cfg, system, q.text, max_prompt_tokens) for q in questions]
    seeds = [question_seed(42, q.question_id) for q in questions]
    params = GenerationConfig(max_new_tokens=max_new_tokens)
    quant = OmegaConf.structured(
        QuantConfig(compute_dtype="bfloat16" if torch.cuda.is_available() else "float32")
    )
    engine = HFEngine(load_for_inference(model_cfg, quant, device_map=bench.device_map()), tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
    started = time.perf_counter()
    generated = 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        completions = engine.generate(
            [prompts[i].input_ids for i in batch], [seeds[i] for i in batch], params
        )
        generated += sum(c.completion_tokens for c in completions)
    hf_seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "questions": len(prompts), "max_new_tokens": max_new_tokens,
        "hf": {"batch_size": batch_size, "seconds": hf_seconds, "generated_tokens_per_s": generated / hf_seconds},
    }  # fmt: skip
    adapters = []
    base = engine.model
    for index in range(3):  # random adapters (B not zero), saved the way training saves them
        lora = peft_lora_config(OmegaConf.structured(LoraConfig()))
        lora.init_lora_weights = False
        torch.manual_seed(index)
        peft_model = get_peft_model(base, lora, adapter_name=f"a{index}")
        path = work / f"adapter-{index}"
        peft_model.save_pretrained(path)
        adapters.append(path / f"a{index}" if (path / f"a{index}").is_dir() else path)
        base = peft_model.unload()
    del base, peft_model
    engine.close()  # frees the GPU for vLLM
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError as error:
        result["vllm"] = f"not run: vLLM is not installed ({error.name})"
        return result
    llm = LLM(
        model=str(model_dir), enable_lora=True, max_lora_rank=64, max_loras=3, dtype="bfloat16", seed=42
    )
    sampling = SamplingParams(max_tokens=max_new_tokens, temperature=0.7, ignore_eos=False)
    requests = [LoRARequest(f"a{i}", i + 1, str(path)) for i, path in enumerate(adapters)]
    started = time.perf_counter()
    outputs = llm.generate(
        [{"prompt_token_ids": p.input_ids} for p in prompts],
        sampling,
        lora_request=[requests[i % 3] for i in range(len(prompts))],
    )
    seconds = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    result["vllm"] = {
        "adapters": 3,
        "seconds": seconds,
        "generated_tokens_per_s": tokens / seconds,
        "dtype": "bf16",
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on CPU: proves the script runs")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-results")))
    parser.add_argument("--steps", type=int, help="timed training steps (default 5 on GPU, 1 in the smoke)")
    parser.add_argument("--only", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --cpu-smoke for the CPU smoke run")
    args.device = "cpu" if args.cpu_smoke else "cuda"
    args.steps = args.steps or (1 if args.cpu_smoke else 5)
    args.out.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (smoke: tiny shapes)"
    report: dict[str, Any] = {"device": card, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"gpu_check on {card}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mc16k-gpu-check-") as tmp:
        work = Path(tmp)
        shape, moe = (TINY, TINY_MOE) if args.cpu_smoke else (MISTRAL_7B, MIXTRAL_8X7B)
        model_dir = save_random_model(work / "mistral-shape", "mistral", shape, args.device)
        if "a" in args.only:
            from omegaconf import OmegaConf

            system = OmegaConf.load(ROOT / "conf/prompt/counseling.yaml").system
            data_dir = bench.write_dataset(
                work / "data", bench.table1_rows(64 if args.cpu_smoke else 256, 42), system
            )
            report["training"] = training_steps(model_dir, data_dir, work, args)
        if "b" in args.only:
            report["mixtral"] = run_isolated("b", args, work)
            print(f"(b) Mixtral-8x7B shape: {json.dumps(report['mixtral'])}", flush=True)
        if "c" in args.only:
            n, new, batch, prompt = (8, 8, 4, 512) if args.cpu_smoke else (200, 128, 50, 512)
            report["generation"] = generation(model_dir, work, n, new, batch, prompt)
            print(f"(c) generation: {json.dumps(report['generation'])}", flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'gpu_check.json'}")


def run_isolated(part: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run part ``b`` in a fresh process, so its ~90 GiB leave nothing behind for part ``c``."""
    out = work / f"{part}.json"
    command = [sys.executable, __file__, "--mixtral-worker", str(out), "--steps", str(args.steps)]
    if args.cpu_smoke:
        command.append("--cpu-smoke")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return {"error": (done.stderr or done.stdout)[-2000:]}
    return json.loads(out.read_text())


def mixtral_worker() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mixtral-worker", type=Path)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cpu-smoke", action="store_true")
    args = parser.parse_args()
    shape, device = (TINY_MOE, "cpu") if args.cpu_smoke else (MIXTRAL_8X7B, "cuda")
    args.mixtral_worker.write_text(json.dumps(mixtral_footprint(shape, device, max(2, args.steps))))


if __name__ == "__main__":
    if "--mixtral-worker" in sys.argv:
        mixtral_worker()
    else:
        main()
