"""One fine-tuning job from a resolved config: skip, resume or run, then leave a loadable adapter.

The job dir (``paths.output_dir``) holds ``run.json`` (who owns the dir), ``provenance.json``,
``checkpoints/`` (adapter-only), ``adapter/`` (PEFT adapter + tokenizer + ``mc16k_run.json`` +
``config.yaml``), ``data_split.json`` (the validation rows), ``metrics.json`` and, last, ``done.json``
(file names in ``mc16k.runs.layout``). A finished job with the same run id returns its recorded validation
loss before any model is loaded.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mc16k.config import register_configs
from mc16k.errors import BadInputError
from mc16k.runs.identity import run_id as compute_run_id
from mc16k.runs.layout import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_DIR,
    CHECKPOINT_DIR,
    DATA_SPLIT_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    RUN_INFO_FILE,
)
from mc16k.runs.records import (
    claim_run_dir,
    finished_run,
    mark_done,
    write_json,
    write_provenance,
)
from mc16k.runs.tracking import RunLabels, logger_config, tracked_run
from mc16k.tasks.cli import run_task

__all__ = ["register_configs", "run_task", "train"]  # train.py imports only its task

log = logging.getLogger(__name__)


def run_name(cfg: DictConfig) -> str:
    """``<model>__<data>``: what the job is, also its dir name inside a sweep."""
    return f"{cfg.model.name}__{cfg.data.name}"


def accumulation_steps(cfg: DictConfig, world_size: int) -> int:
    """Micro-batches per optimizer step so that micro-batch x accumulation x processes = the effective batch,
    all three counted in examples (conversations), whatever the batching mode lays them out in."""
    if cfg.train.accumulate_grad_batches is not None:
        return int(cfg.train.accumulate_grad_batches)
    per_step = cfg.data.micro_batch_size * world_size
    if cfg.train.effective_batch_size % per_step:
        raise BadInputError(
            f"train.effective_batch_size={cfg.train.effective_batch_size} is not a multiple of "
            f"data.micro_batch_size={cfg.data.micro_batch_size} x {world_size} process(es); "
            "change one of them or set train.accumulate_grad_batches"
        )
    return cfg.train.effective_batch_size // per_step


def check_fsdp_quant_storage(cfg: DictConfig) -> None:
    """QLoRA under FSDP shards 4-bit weights only when they are stored in the compute dtype."""
    strategy = OmegaConf.select(cfg, "trainer.strategy")
    target = str(strategy.get("_target_", "")) if OmegaConf.is_dict(strategy) else str(strategy or "")
    if "fsdp" in target.lower() and cfg.quant.enabled and cfg.quant.quant_storage != cfg.quant.compute_dtype:
        raise BadInputError(
            f"trainer=fsdp with 4-bit weights needs quant.quant_storage == quant.compute_dtype "
            f"(got {cfg.quant.quant_storage.value} vs {cfg.quant.compute_dtype.value})"
        )


def build_trainer(cfg: DictConfig, run_dir: Path, logger: Any) -> L.Trainer:
    """Lightning trainer from ``cfg.trainer`` with adapter-only checkpoints every few optimizer steps."""
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=str(run_dir / CHECKPOINT_DIR),
            filename="step-{step}",
            every_n_train_steps=cfg.train.checkpoint_every_n_steps,
            save_top_k=0,
            save_last=True,
        )
    ]
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar())
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=logger if logger is not None else False,
        default_root_dir=str(run_dir), _convert_="object",
    )  # fmt: skip
    trainer.accumulate_grad_batches = accumulation_steps(cfg, trainer.world_size)
    return trainer


def build_model(cfg: DictConfig, trainer: L.Trainer, vocab_size: int) -> tuple[Any, Any]:
    """4-bit (or plain) base on this rank's own device, with freshly seeded LoRA adapters."""
    from mc16k.models.loading import load_base_model
    from mc16k.models.lora import attach_lora

    device = trainer.strategy.root_device
    device_map = {"": device.index if device.type == "cuda" else "cpu"}
    base = load_base_model(cfg.model, cfg.quant, device_map=device_map, cache_dir=cfg.paths.cache_dir)
    embeddings = base.get_input_embeddings().num_embeddings
    if vocab_size > embeddings:
        raise BadInputError(
            f"model {cfg.model.name!r}: the tokenizer has {vocab_size} tokens but the model {embeddings} "
            "embeddings (a pad token was added); set model.pad_token to a token of the vocabulary"
        )
    return attach_lora(
        base, cfg.lora, seed=cfg.seed, quantized=cfg.quant.enabled,
        gradient_checkpointing=cfg.train.gradient_checkpointing,
    )  # fmt: skip


def save_adapter(model: Any, tokenizer: Any, cfg: DictConfig, run_id: str, adapter_dir: Path) -> None:
    """PEFT adapter + tokenizer + what inference needs to rebuild the base (mc16k_run.json, config.yaml)."""
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    write_json(
        adapter_dir / RUN_INFO_FILE,
        {
            "run_id": run_id,
            "name": run_name(cfg),
            "architecture": model.get_base_model().config.model_type,  # llama, mistral, mixtral
            "model": resolved["model"],
            "quant": resolved["quant"],
            "lora": resolved["lora"],
            "prompt": resolved["prompt"],
            "data_split": cfg.data.name,
            "seed": cfg.seed,
        },
    )
    OmegaConf.save(resolved, adapter_dir / ADAPTER_CONFIG_FILE)


def validation_loss(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule) -> float:
    (metrics,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    return float(metrics["val/loss"])


def train(cfg: DictConfig) -> float | None:
    """Run (or skip, or resume) the job ``cfg`` describes; return its validation loss for sweepers."""
    run_dir = Path(cfg.paths.output_dir)
    run_id = compute_run_id(cfg)
    name = run_name(cfg)
    done = finished_run(run_dir, run_id)
    if done is not None and cfg.train.skip_finished:
        log.info("%s: finished earlier (run %s, val loss %s), skipping", name, run_id, done.get("val_loss"))
        return done.get("val_loss")
    check_fsdp_quant_storage(cfg)
    tracking = logger_config(cfg.logger)
    is_rank_zero = rank_zero_only.rank == 0
    if is_rank_zero:
        claim_run_dir(run_dir, run_id, name)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    from mc16k.data.datamodule import MentalChatDataModule
    from mc16k.data.loading import resolve_files
    from mc16k.data.tokenizer import load_tokenizer
    from mc16k.models.module import CausalLMFineTuner

    tokenizer = load_tokenizer(cfg.model)
    datamodule = MentalChatDataModule(cfg.data, cfg.prompt, cfg.model, tokenizer)
    datamodule.setup("fit")
    data_summary = datamodule.summary()
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if is_rank_zero:
        write_provenance(run_dir, run_id, resolved, resolve_files(cfg.data), data_summary)
        write_json(run_dir / DATA_SPLIT_FILE, datamodule.prepared.split_record())

    labels = RunLabels(run_id=run_id, name=name, group=cfg.train.group, tags=[cfg.model.name, cfg.data.name])
    with tracked_run(tracking, labels, resolved, run_dir, is_rank_zero) as logger:
        trainer = build_trainer(cfg, run_dir, logger)
        model, share = build_model(cfg, trainer, len(tokenizer))
        module = CausalLMFineTuner(
            model, instantiate(cfg.train.optimizer), instantiate(cfg.train.scheduler), tokenizer.pad_token_id
        )
        if logger is not None:
            trainable = {
                "model/trainable_params": share.trainable, "model/trainable_percent": share.percent,
                "model/trainable_percent_paper_script": share.paper_script_percent,
            }  # fmt: skip
            logger.log_metrics({**trainable, **data_summary}, step=0)
        base_loss = validation_loss(trainer, module, datamodule) if cfg.train.validate_base else None
        last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
        if last.is_file():
            log.info("%s: resuming from %s", name, last)
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
        val_loss = validation_loss(trainer, module, datamodule)
        metrics = {
            "val_loss": val_loss,
            "val_perplexity": math.exp(min(val_loss, 50.0)),
            "base_val_loss": base_loss,
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "trainable_params": share.trainable,
            "trainable_percent": share.percent,
            "effective_batch_size": cfg.data.micro_batch_size * trainer.accumulate_grad_batches * trainer.world_size,
            "steps_per_epoch": datamodule.steps_per_epoch(),
            **module.step_summary(),
            "trainable_percent_paper_script": share.paper_script_percent,
            "optimizer": f"{type(trainer.optimizers[0]).__module__}.{type(trainer.optimizers[0]).__qualname__}",
        }
        log.info(
            "%s: %d optimizer steps (%d per epoch), examples per step mean %.2f (min %s, max %s), "
            "tokens per step mean %.1f",
            name, metrics["optimizer_steps"], metrics["steps_per_epoch"], metrics.get("examples_per_step_mean", 0.0),
            metrics.get("examples_per_step_min"), metrics.get("examples_per_step_max"),
            metrics.get("tokens_per_step_mean", 0.0),
        )  # fmt: skip
        if logger is not None:
            logger.log_metrics({f"final/{key}": value for key, value in metrics.items() if value is not None})
        if trainer.is_global_zero:
            save_adapter(model, tokenizer, cfg, run_id, run_dir / ADAPTER_DIR)
            write_json(run_dir / METRICS_FILE, metrics)
            mark_done(run_dir, run_id, metrics)
    if not is_rank_zero:
        return val_loss
    base_text = f"base {base_loss:.4f} -> " if base_loss is not None else ""
    log.info("%s: validation loss %sadapter %.4f (run %s, %s)", name, base_text, val_loss, run_id, run_dir)
    return val_loss
