"""The config tree: every paper model × split composes, the sweep glob is exactly the paper models,
and bad keys or types fail at compose time naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException

from mc16k.config import register_configs
from mc16k.dtypes import DType, to_torch_dtype

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
PAPER_MODEL_IDS = {
    "meta-llama/Llama-2-7b-hf",
    "mistralai/Mistral-7B-v0.1",
    "mistralai/Mistral-7B-Instruct-v0.2",
    "mistralai/Mixtral-8x7B-v0.1",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "lmsys/vicuna-7b-v1.5",
    "HuggingFaceH4/zephyr-7b-alpha",
}


@pytest.fixture(scope="module")
def hydra_conf():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def expand_sweep(config_loader, arguments: list[str]) -> list[list[str]]:
    """Expand sweep arguments exactly as Hydra's basic sweeper does for `-m`."""
    overrides = OverridesParser.create(config_loader=config_loader).parse_overrides(arguments)
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return batch


def test_paper_sweep_is_exactly_the_seven_base_models_times_three_splits(hydra_conf):
    jobs = expand_sweep(hydra_conf, ["model=glob(*)", "data=synthetic,interview,both"])
    assert len(jobs) == 21
    seen = set()
    for overrides in jobs:
        cfg = compose("train", overrides=overrides)
        seen.add((cfg.model.name_or_path, cfg.data.name))
        assert cfg.lora.r == 64 and cfg.quant.enabled
    assert {model for model, _ in seen} == PAPER_MODEL_IDS
    assert len(seen) == 21


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("lora.r=abc", "lora.r"),
        ("quant.compute_dtype=float77", "quant.compute_dtype"),
        ("data.val_fraction=lots", "data.val_fraction"),
        ("model.prompt_format=markdown", "model.prompt_format"),
        ("lora.rank=8", "lora.rank"),
    ],
)
def test_bad_key_or_type_fails_at_compose_naming_the_key(hydra_conf, override, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose("train", overrides=[override])
    chain = []
    err: BaseException | None = info.value
    while err is not None:
        chain.append(str(err))
        err = err.__cause__
    assert key in "\n".join(chain)


def test_dtype_names_resolve_in_one_place():
    import torch

    assert to_torch_dtype("bfloat16") is torch.bfloat16
    assert to_torch_dtype(DType.float32) is torch.float32
    with pytest.raises(ValueError, match="float77"):
        to_torch_dtype("float77")
