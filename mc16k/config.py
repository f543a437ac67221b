"""Root config schema shared by train.py, infer.py and evaluate.py.

One schema for all three apps so a ``_global_`` experiment file (demo, smoke, paper) works in each of them;
every stage keeps its own small config object beside its code. The schema is registered in Hydra's
ConfigStore as ``mc16k_schema`` and is the first entry of every primary config's defaults list, so a
misspelled key or a wrong type fails at compose time with the key's full name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mc16k.data.config import DataConfig, PromptConfig
from mc16k.errors import BadInputError
from mc16k.inference.config import BenchmarkConfig, InferConfig
from mc16k.judging.config import EvaluateConfig
from mc16k.models.config import BaselineConfig, LoraConfig, QuantConfig, TrainConfig
from mc16k.models.resolvers import smollm2_dir, tiny_model_dir
from mc16k.paths import project_root, resource_path
from mc16k.schema import ModelConfig


@dataclass
class PathsConfig:
    root_dir: str = "???"
    data_dir: str = "???"
    output_dir: str = "???"
    work_dir: str = "???"
    cache_dir: str = "???"
    runs_dir: str = "???"  # training runs (single runs; sweeps go to multirun/)
    answers_dir: str = "???"  # infer.py writes <answers_dir>/<benchmark>/<model_id>/round-<k>.jsonl
    judgments_dir: str = "???"  # evaluate.py's judgment store
    reports_dir: str = "???"  # tables and plots


@dataclass
class RootConfig:
    task_name: str = "???"
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    baseline: Optional[BaselineConfig] = None
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)  # shared by infer.py and evaluate.py
    infer: InferConfig = field(default_factory=InferConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)  # evaluate.py: judge + reports
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: Any = None
    logger: Any = None
    extras: Any = None


def group_options(group: str) -> str:
    """The options of config group ``group`` on Hydra's search path, for the ``--help`` templates
    (conf/hydra/help): the help lists what exists, also options a user adds."""
    from hydra.core.global_hydra import GlobalHydra

    return ", ".join(GlobalHydra.instance().config_loader().get_group_options(group))


def register_configs() -> None:
    """Register the root schema and the path resolvers; called before every Hydra compose."""
    ConfigStore.instance().store(name="mc16k_schema", node=RootConfig)
    OmegaConf.register_new_resolver("mc16k_root", project_root, replace=True)
    OmegaConf.register_new_resolver("mc16k_resource", resource_path, replace=True)
    OmegaConf.register_new_resolver("smollm2_dir", smollm2_dir, replace=True)
    OmegaConf.register_new_resolver("tiny_model", tiny_model_dir, replace=True)
    OmegaConf.register_new_resolver("mc16k_options", group_options, replace=True)


# Keys that take any sub-key: Lightning Trainer arguments, the logger block (validated by its own schema),
# instantiated optimizer/scheduler arguments, per-source maps and free extras. Everywhere else a key that is
# not in the schema is refused, also when it was added with ``+``.
OPEN_KEYS = (
    "trainer", "logger", "extras", "train.optimizer", "train.scheduler", "data.files", "data.min_words",
    "lora.target_modules",
)  # fmt: skip


def unknown_keys(cfg: DictConfig) -> list[str]:
    """Full names of keys in ``cfg`` that its typed schema does not declare (Hydra's ``+key=value`` adds
    them silently), outside :data:`OPEN_KEYS`."""
    found: list[str] = []

    def walk(node: DictConfig, prefix: str) -> None:
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            return
        declared = {f.name for f in dataclasses.fields(schema)}
        for key, value in node.items_ex(resolve=False):
            name = f"{prefix}{key}"
            if key not in declared:
                found.append(name)
            elif name not in OPEN_KEYS and OmegaConf.is_dict(value):
                walk(value, name + ".")

    walk(cfg, "")
    return found


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """Stop a job whose config holds a key the code would silently ignore (e.g. ``+lora.rnk=8``)."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise BadInputError(
            f"unknown config key(s) {', '.join(unknown)}: not in the schema, so nothing would read them\n"
            f"Check the spelling (`--cfg job` prints every key); only these groups take new keys: "
            f"{', '.join(OPEN_KEYS)}"
        )
