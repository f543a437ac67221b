"""Training stage on the tiny random model, in process: loading, LoRA, recipe, run identity, a smoke job
(adapter-only checkpoints, loadable adapter, done marker, skip on relaunch) and the bf16 export."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from peft import PeftModel

from mc16k.config import register_configs
from mc16k.models.config import LoraConfig, QuantConfig
from mc16k.models.loading import load_base_model, load_for_inference
from mc16k.models.lora import attach_lora
from mc16k.models.optim import adamw, constant_with_warmup
from mc16k.runs.identity import run_id
from mc16k.runs.tracking import logger_config
from mc16k.schema import ModelConfig
from mc16k.tasks.export import export_merged
from mc16k.tasks.train import accumulation_steps, train

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


def compose_train(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def tiny_cfg(tiny_model_dir: Path) -> ModelConfig:
    return OmegaConf.structured(ModelConfig(name="tiny", name_or_path=str(tiny_model_dir), dtype="float32"))


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_lora_init_is_seeded_and_covers_all_linear_layers_but_lm_head(tiny_model_dir):
    plain = OmegaConf.structured(QuantConfig(enabled=False))
    lora = OmegaConf.structured(LoraConfig(r=8))
    first, share = attach_lora(load_base_model(tiny_cfg(tiny_model_dir), plain), lora, 7, False, False)
    torch.manual_seed(123)  # global RNG state before the call must not matter
    second, _ = attach_lora(load_base_model(tiny_cfg(tiny_model_dir), plain), lora, 7, False, False)
    other, _ = attach_lora(load_base_model(tiny_cfg(tiny_model_dir), plain), lora, 8, False, False)
    a, b, c = lora_weights(first), lora_weights(second), lora_weights(other)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in a if ".lora_A" in n}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head" in n for n in a)
    assert 0 < share.percent < 100 and first.training


def test_nf4_base_is_4bit_with_double_quant(tiny_model_dir):
    from bitsandbytes.nn import Linear4bit

    model = load_base_model(tiny_cfg(tiny_model_dir), OmegaConf.structured(QuantConfig(compute_dtype="float32")))
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, Linear4bit)
    assert layer.weight.quant_state.quant_type == "nf4" and layer.weight.quant_state.nested
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.isfinite(model(ids, labels=ids).loss)


def test_recipe_warmup_then_constant_and_torch_adamw_without_cuda():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = adamw([param], lr=2e-4)
    assert type(optimizer) is torch.optim.AdamW  # no CUDA here: paged AdamW needs it
    schedule = constant_with_warmup(optimizer, total_steps=100, warmup_ratio=0.03)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:4] == pytest.approx([0.0, 2e-4 / 3, 2 * 2e-4 / 3, 2e-4])  # 3 % of 100 steps, from lr 0
    assert rates[4:] == pytest.approx([2e-4] * 6)
    with pytest.raises(ValueError, match="warmup_ratio"):
        constant_with_warmup(optimizer, 100, 1.5)


def test_effective_batch_is_micro_batch_times_accumulation_times_processes():
    cfg = compose_train(["experiment=paper", "paths.output_dir=/unused"])
    assert accumulation_steps(cfg, world_size=1) == 64 // 4
    assert accumulation_steps(cfg, world_size=2) == 8
    cfg.data.micro_batch_size = 5
    with pytest.raises(ValueError, match="data.micro_batch_size=5"):
        accumulation_steps(cfg, world_size=1)
    cfg.train.accumulate_grad_batches = 3
    assert accumulation_steps(cfg, world_size=1) == 3


def test_run_id_follows_what_is_trained_not_where_or_how_it_is_logged():
    base = ["paths.output_dir=/a"]
    reference = run_id(compose_train(base))
    assert run_id(compose_train(base)) == reference
    assert run_id(compose_train(["paths.output_dir=/b", "logger=csv", "trainer.enable_progress_bar=false"])) == reference
    assert run_id(compose_train(["infer.rounds=3", *base])) == reference
    for changed in (["train.optimizer.lr=1e-4"], ["data=interview"], ["seed=1"], ["lora.r=16"]):
        assert run_id(compose_train([*base, *changed])) != reference, changed


def test_logger_config_names_bad_keys():
    assert logger_config(None).kind.value == "none"
    with pytest.raises(ValueError, match="logger.kind"):
        logger_config({"kind": "tensorboard"})
    with pytest.raises(ValueError, match="colour"):
        logger_config({"kind": "csv", "colour": "red"})


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_model_dir):
    """One smoke job (tiny model, 4-bit, CSV logger) trained in process; (cfg, run dir, val loss)."""
    root = tmp_path_factory.mktemp("smoke")
    run_dir = root / "run"
    cfg = compose_train([
        "experiment=smoke", "logger=csv", f"paths.root_dir={root}", f"paths.output_dir={run_dir}", f"paths.work_dir={root}",
        f"model.name_or_path={tiny_model_dir}",
    ])  # fmt: skip
    return cfg, run_dir, train(cfg)


def test_smoke_job_leaves_adapter_only_checkpoints_a_loadable_adapter_and_a_done_marker(smoke_run):
    cfg, run_dir, val_loss = smoke_run
    done = json.loads((run_dir / "done.json").read_text())
    assert done["run_id"] == run_id(cfg) and done["global_step"] == cfg.trainer.max_steps
    assert math.isfinite(val_loss) and done["val_loss"] == val_loss and done["base_val_loss"] > 0
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["state_dict"] and all("lora_" in key for key in checkpoint["state_dict"])
    assert checkpoint["optimizer_states"] and checkpoint["lr_schedulers"] and checkpoint["loops"]
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert provenance["git"]["commit"] and provenance["packages"]["peft"]
    assert {"interview", "synthetic"} <= provenance["data_files"].keys()
    assert len(provenance["data_files"]["interview"]["sha256"]) == 64
    assert provenance["data_counts"]["data/train/examples"] > 0
    split = json.loads((run_dir / "data_split.json").read_text())["validation"]
    assert len(split) == provenance["data_counts"]["data/val/examples"] > 0
    assert {"source", "row", "content_hash"} == set(split[0]) and len(split[0]["content_hash"]) == 64
    metrics = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_step", "train/tokens_per_s", "train/token_efficiency", "lr-AdamW"} <= set(metrics)

    adapter = run_dir / "adapter"
    info = json.loads((adapter / "mc16k_run.json").read_text())
    assert info["run_id"] == done["run_id"] and info["data_split"] == "both" and info["model"]["name"] == "mistral-7b"
    assert info["architecture"] == "llama"  # the loaded model's model_type (here the tiny Llama fixture)
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["optimizer"] == "torch.optim.adamw.AdamW"  # no CUDA: not the paged one
    assert 0 < final["trainable_percent_paper_script"] < final["trainable_percent"]
    assert OmegaConf.load(adapter / "config.yaml").lora.r == cfg.lora.r
    base = load_base_model(cfg.model, cfg.quant)
    model = PeftModel.from_pretrained(base, str(adapter))
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # it learnt something


def test_relaunch_skips_a_finished_job_before_loading_anything(smoke_run):
    cfg, run_dir, val_loss = smoke_run
    before = (run_dir / "done.json").stat().st_mtime_ns
    started = time.perf_counter()
    assert train(cfg) == val_loss
    assert time.perf_counter() - started < 2.0
    assert (run_dir / "done.json").stat().st_mtime_ns == before


def test_a_changed_config_refuses_the_dir_of_another_run(smoke_run):
    cfg, _, _ = smoke_run
    changed = cfg.copy()
    changed.train.optimizer.lr = 1e-5
    with pytest.raises(RuntimeError, match="config changed"):
        train(changed)


def test_export_merges_the_adapter_into_a_plain_bf16_model(smoke_run, tmp_path):
    cfg, run_dir, _ = smoke_run
    out = export_merged(run_dir / "adapter", tmp_path / "merged", cache_dir=cfg.paths.cache_dir)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.dtype == torch.bfloat16 and not any("lora" in n for n, _ in merged.named_parameters())
    plain = OmegaConf.structured(QuantConfig(enabled=False))
    model_cfg = cfg.model.copy()
    model_cfg.dtype = "float32"
    unmerged = load_for_inference(model_cfg, plain, adapter_dir=run_dir / "adapter")
    ids = torch.tensor([[1, 7, 30, 44, 2]])
    with torch.no_grad():
        expected = unmerged(ids).logits
        got = merged.float()(ids).logits
    assert torch.allclose(got, expected, atol=0.05, rtol=0.05)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_prints_paper_values_and_names_a_bad_key():
    shown = run_cli("experiment=paper", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr
    job = OmegaConf.create(shown.stdout)
    assert (job.lora.r, job.lora.alpha, job.lora.dropout, job.lora.target_modules) == (64, 16, 0.1, "all-linear")
    assert (job.quant.quant_type, job.quant.double_quant, job.quant.compute_dtype) == ("nf4", True, "bfloat16")
    assert (job.train.optimizer.lr, job.train.scheduler.warmup_ratio, job.trainer.gradient_clip_val) == (2e-4, 0.03, 0.3)
    assert (job.trainer.max_epochs, job.train.effective_batch_size, job.data.max_seq_len) == (5, 64, 1024)
    assert job.train.gradient_checkpointing and job.trainer.precision == "bf16-mixed"
    bad = run_cli("lora.r=abc")
    assert bad.returncode != 0 and "lora.r" in bad.stderr


def test_qlora_gradients_through_the_4bit_base_equal_those_of_its_dequantized_copy(tiny_model_dir):
    """bitsandbytes warns about backprop through its CPU 4-bit kernel; the LoRA gradients are nonetheless exact."""
    import bitsandbytes.functional as bnb_functional
    from bitsandbytes.nn import Linear4bit

    quantized = load_base_model(tiny_cfg(tiny_model_dir), OmegaConf.structured(QuantConfig(compute_dtype="float32")))
    dense = load_base_model(tiny_cfg(tiny_model_dir), OmegaConf.structured(QuantConfig(enabled=False)))
    for (_, q_module), (_, d_module) in zip(quantized.named_modules(), dense.named_modules(), strict=True):
        if isinstance(q_module, Linear4bit):
            d_module.weight.data = bnb_functional.dequantize_4bit(q_module.weight.data, q_module.weight.quant_state)
    lora = OmegaConf.structured(LoraConfig(r=4, dropout=0.0))
    models = [attach_lora(quantized, lora, 0, True, False)[0], attach_lora(dense, lora, 0, False, False)[0]]
    ids = torch.tensor([[1, 5, 9, 12, 40, 41, 7, 3]])
    grads = []
    for model in models:
        torch.manual_seed(1)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.normal_(0, 0.1)  # non-zero B so gradients reach every LoRA matrix
        model(ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if "lora_" in n})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[1].items():
        assert torch.allclose(grads[0][name], grad, atol=1e-5), name


@pytest.mark.parametrize("launcher, target", [
    ("local", "BasicLauncher"), ("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher"),
])  # fmt: skip
def test_launcher_presets_compose_with_gpus_per_job_from_the_trainer(launcher, target):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}", "trainer.devices=4"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 4 and cfg.hydra.launcher.tasks_per_node == 4
    assert cfg.hydra.sweep.subdir == "mistral-7b__both" and cfg.hydra.sweep.dir.endswith("multirun/default")


def test_fsdp_preset_stores_4bit_weights_in_the_compute_dtype_and_a_mismatch_is_refused():
    from mc16k.tasks.train import check_fsdp_quant_storage

    cfg = compose_train(["trainer=fsdp", "paths.output_dir=/unused"])
    assert cfg.quant.quant_storage == cfg.quant.compute_dtype
    assert cfg.trainer.strategy._target_.endswith("FSDPStrategy")
    check_fsdp_quant_storage(cfg)
    cfg.quant.quant_storage = "uint8"
    with pytest.raises(ValueError, match="quant.quant_storage"):
        check_fsdp_quant_storage(cfg)


def test_wandb_run_is_finished_and_marked_failed_when_the_job_raises(tmp_path, monkeypatch):
    import wandb

    from mc16k.runs.tracking import RunLabels, tracked_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    labels = RunLabels(run_id="abc123def456", name="tiny__sample", group="unit", tags=["tiny", "sample"])
    with pytest.raises(RuntimeError, match="boom"):
        with tracked_run(logger_config({"kind": "wandb"}), labels, {"seed": 1}, tmp_path, is_rank_zero=True) as logger:
            assert logger.experiment.group == "unit" and set(logger.experiment.tags) == {"tiny", "sample"}
            raise RuntimeError("boom")
    assert wandb.run is None
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*-abc123def456")
    assert (run_dir / "run-abc123def456.wandb").is_file()


def test_paper_lora_on_a_mistral_7b_shaped_model_trains_about_2_percent():
    """Paper: about 2.14 % trainable on a 7B model; r=64 on every linear layer of Mistral-7B's shape gives 2.26 %."""
    from peft import get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from mc16k.models.lora import TrainableShare, peft_lora_config

    cfg = compose_train(["experiment=paper", "paths.output_dir=/unused"])
    with torch.device("meta"):
        model = MistralForCausalLM(MistralConfig())  # the defaults are Mistral-7B's sizes
    share = TrainableShare(*get_peft_model(model, peft_lora_config(cfg.lora)).get_nb_trainable_parameters())
    # per layer and rank: q, o (4096 -> 4096), k, v (4096 -> 1024), gate, up, down (4096 <-> 14336); no lm_head
    assert share.trainable == 32 * 64 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))
    assert 2.0 < share.percent < 2.5


def test_paged_adamw_missing_on_cuda_is_said_loudly_not_silently_replaced(monkeypatch):
    from mc16k.models import optim

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(optim, "bitsandbytes_has_cuda", lambda: False)
    with pytest.warns(RuntimeWarning, match="paged AdamW 32-bit"):
        optimizer = adamw([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    assert type(optimizer) is torch.optim.AdamW


def test_a_checkpoint_lacking_lora_keys_is_refused_on_load(smoke_run, tiny_model_dir):
    from mc16k.models.module import CausalLMFineTuner

    _, run_dir, _ = smoke_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    plain = OmegaConf.structured(QuantConfig(enabled=False))
    model, _ = attach_lora(load_base_model(tiny_cfg(tiny_model_dir), plain), OmegaConf.structured(LoraConfig(r=8)),
                           0, False, False)  # fmt: skip
    module = CausalLMFineTuner(model, None, None, pad_token_id=0)
    module.on_load_checkpoint(checkpoint)  # the smoke run's own adapter: accepted
    dropped = next(iter(checkpoint["state_dict"]))
    del checkpoint["state_dict"][dropped]
    with pytest.raises(RuntimeError, match="1 LoRA keys missing"):
        module.on_load_checkpoint(checkpoint)
    checkpoint["state_dict"] = {}
    with pytest.raises(RuntimeError, match="missing"):
        module.on_load_checkpoint(checkpoint)
