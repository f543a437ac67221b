"""Who answers: a base model, a fine-tuned run (adapter dir from train.py), or a baseline.

``model_id`` names each answer set so reports tell them apart at a glance:
``<model>`` (base), ``<model>-ft-<split>`` (fine-tuned on that split), ``baseline-<name>``; every answer row
also carries ``kind``, ``base_model`` and ``data_split``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mc16k.errors import BadInputError, MissingInputError
from mc16k.models.config import BaselineConfig, QuantConfig
from mc16k.paths import config_dir
from mc16k.runs.layout import ADAPTER_DIR, DONE_FILE, RUN_INFO_FILE, read_run_info
from mc16k.schema import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerTarget:
    model_id: str
    kind: str  # base | finetuned | baseline
    model: Any  # ModelConfig-shaped DictConfig
    quant: Any  # QuantConfig-shaped DictConfig
    base_model: str  # the base's name_or_path (a baseline: what it was tuned from, if known)
    data_split: str | None = None  # finetuned only
    adapter_dir: Path | None = None  # finetuned only
    run_id: str | None = None  # finetuned only: the training run's id
    prompt_version: str | None = None  # finetuned only: the prompt version it was trained with

    def row_fields(self) -> dict[str, Any]:
        """The fields every answer row of this target carries."""
        return {
            "kind": self.kind,
            "base_model": self.base_model,
            "data_split": self.data_split,
            "run_id": self.run_id,
        }


def base_target(model_cfg: DictConfig, quant_cfg: DictConfig) -> AnswerTarget:
    return AnswerTarget(model_cfg.name, "base", model_cfg, quant_cfg, base_model=model_cfg.name_or_path)


def baseline_target(baseline_cfg: DictConfig, quant_cfg: DictConfig) -> AnswerTarget:
    return AnswerTarget(
        f"baseline-{baseline_cfg.name}",
        "baseline",
        baseline_cfg,
        quant_cfg,
        base_model=baseline_cfg.base_model or baseline_cfg.name_or_path,
    )


def load_baseline_config(name: str) -> DictConfig:
    """``baseline=<name>`` composed through Hydra's config search path, validated against ``BaselineConfig``.

    Inside a Hydra app (infer.py) this is the app's own search path, so baselines added by a search-path
    plugin or ``hydra.searchpath`` are found; outside one (a script, a test) it is ``paths.config_dir()``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import MissingConfigException

    overrides = [f"+baseline={name}"]
    try:
        if GlobalHydra.instance().is_initialized():
            if HydraConfig.initialized():  # the app's hydra.searchpath applies to this compose too
                overrides.append("hydra.searchpath=[" + ",".join(HydraConfig.get().searchpath) + "]")
            composed = compose(config_name=None, overrides=overrides)
        else:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                composed = compose(config_name=None, overrides=overrides)
    except MissingConfigException as err:
        raise MissingInputError(f"infer.baselines: no baseline {name!r}. {err}") from err
    if not OmegaConf.is_dict(composed.get("baseline")):  # no baseline group on the search path at all
        raise MissingInputError(f"infer.baselines: no config group 'baseline' on Hydra's search path for {name!r}")
    return OmegaConf.merge(OmegaConf.structured(BaselineConfig), composed.baseline)


def finetuned_target(run_dir: Path) -> AnswerTarget:
    """The target for one finished training run, described by ``<run_dir>/adapter/mc16k_run.json``."""
    adapter_dir = run_dir / ADAPTER_DIR
    meta_path = adapter_dir / RUN_INFO_FILE
    try:
        meta = read_run_info(adapter_dir)
    except FileNotFoundError as err:
        raise MissingInputError(f"training run {run_dir} is marked done but has no {meta_path}") from err
    try:
        model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), meta["model"])
        quant_cfg = OmegaConf.merge(OmegaConf.structured(QuantConfig), meta["quant"])
        split = str(meta["data_split"])
        run_id = str(meta["run_id"])
        prompt_version = meta["prompt"]["version"]
    except (KeyError, TypeError, ValueError) as err:
        raise BadInputError(f"{meta_path}: unreadable run description ({type(err).__name__}: {err})") from err
    return AnswerTarget(
        f"{model_cfg.name}-ft-{split}",
        "finetuned",
        model_cfg,
        quant_cfg,
        base_model=model_cfg.name_or_path,
        data_split=split,
        adapter_dir=adapter_dir,
        run_id=run_id,
        prompt_version=prompt_version,
    )


def finished_runs(path: str | Path) -> list[Path]:
    """Run dirs at or below ``path`` holding a ``done.json`` (a single run dir or a whole sweep dir)."""
    root = Path(path)
    if not root.is_dir():
        raise MissingInputError(
            f"infer.from_runs: {root} is not a directory (train the runs first with train.py)"
        )
    if (root / DONE_FILE).is_file():
        return [root]
    done = sorted(marker.parent for marker in root.rglob(DONE_FILE))
    unfinished = sorted(
        meta.parents[1]
        for meta in root.rglob(f"{ADAPTER_DIR}/{RUN_INFO_FILE}")
        if not (meta.parents[1] / DONE_FILE).exists()
    )
    if unfinished:
        log.warning(
            "skipping %d unfinished run(s) under %s: %s", len(unfinished), root, [str(p) for p in unfinished]
        )
    if not done:
        raise MissingInputError(f"infer.from_runs: no finished training run (done.json) under {root}")
    return done


def sweep_targets(path: str | Path, with_base_models: bool) -> list[AnswerTarget]:
    """Every finished run below ``path``, each base model first (once, with its runs' quantization).

    Runs of the same model and split (e.g. a seed sweep) get their run id appended to the model id.
    """
    runs = [finetuned_target(run) for run in finished_runs(path)]
    clashes = {mid for mid, count in Counter(t.model_id for t in runs).items() if count > 1}
    runs = [replace(t, model_id=f"{t.model_id}-{t.run_id}") if t.model_id in clashes else t for t in runs]
    targets: list[AnswerTarget] = []
    for run in runs:
        if with_base_models and all(t.model_id != run.model.name for t in targets):
            targets.append(base_target(run.model, run.quant))
        targets.append(run)
    return targets


def resolve_targets(cfg: DictConfig) -> list[AnswerTarget]:
    """Targets the config names, in order: a sweep's runs and their bases (``infer.from_runs``), the
    ``baseline`` group's choice, each of ``infer.baselines``; the ``model`` base when none of these is set."""
    targets = sweep_targets(cfg.infer.from_runs, cfg.infer.with_base_models) if cfg.infer.from_runs else []
    baselines = [cfg.baseline] if cfg.baseline is not None else []
    baselines += [load_baseline_config(name) for name in cfg.infer.baselines]
    for baseline_cfg in baselines:
        target = baseline_target(baseline_cfg, cfg.quant)
        if all(t.model_id != target.model_id for t in targets):
            targets.append(target)
    return targets or [base_target(cfg.model, cfg.quant)]
