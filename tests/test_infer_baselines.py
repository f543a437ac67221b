"""Baselines named in infer.baselines are composed through Hydra's config search path, not read from a
checkout path: a baseline in an extra search-path dir is found, an unknown one names the options."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from mc16k.config import register_configs
from mc16k.inference.targets import resolve_targets

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def test_listed_baselines_are_composed_from_the_config_group():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("infer", overrides=["infer.baselines=[chatpsychiatrist,samantha-1.11-7b]"])
    targets = resolve_targets(cfg)  # outside any Hydra app: the project's config dir
    assert [(t.model_id, t.kind, t.model.name_or_path) for t in targets] == [
        ("baseline-chatpsychiatrist", "baseline", "EmoCareAI/ChatPsychiatrist"),
        ("baseline-samantha-1.11-7b", "baseline", "ehartford/Samantha-1.11-7b"),
    ]
    assert targets[0].model.max_context == 2048 and targets[0].base_model == "LLaMA-7B"


def test_a_baseline_on_an_extra_search_path_is_found_inside_the_app(tmp_path):
    extra = tmp_path / "extra-conf"
    (extra / "baseline").mkdir(parents=True)
    (extra / "baseline" / "my-counselor.yaml").write_text("name: my-counselor\nname_or_path: me/my-counselor\n")
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "infer",
            overrides=[f"hydra.searchpath=[file://{extra}]", "infer.baselines=[my-counselor,chatpsychiatrist]"],
            return_hydra_config=True,
        )
        HydraConfig.instance().set_config(cfg)  # what @hydra.main does before calling the task
        try:
            targets = resolve_targets(cfg)
            with pytest.raises(FileNotFoundError, match=r"no baseline 'nope'(.|\n)*chatpsychiatrist(.|\n)*my-counselor"):
                cfg.infer.baselines = ["nope"]
                resolve_targets(cfg)
        finally:
            HydraConfig.instance().cfg = None
    assert [t.model_id for t in targets] == ["baseline-my-counselor", "baseline-chatpsychiatrist"]
    assert targets[0].model.name_or_path == "me/my-counselor" and targets[0].model.max_context == 4096
