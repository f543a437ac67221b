"""Every app composes with every experiment file (the schema validates each pair at compose time)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mc16k.config import register_configs
from mc16k.synth.config import register_synth_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
# apps whose defaults list takes an experiment (the synth apps take none yet)
APPS = sorted(p.stem for p in CONF.glob("*.yaml") if "- experiment: null" in p.read_text(encoding="utf-8"))
EXPERIMENTS = [None, *sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))]


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=str)
@pytest.mark.parametrize("app", APPS)
def test_app_composes_with_experiment(app, experiment):
    register_configs()
    register_synth_configs()  # the synth apps' root schemas
    overrides = [] if experiment is None else [f"experiment={experiment}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(app, overrides=overrides)
    assert cfg.task_name == app
    if experiment == "paper" and "lora" in cfg and cfg.lora is not None:
        assert (cfg.lora.r, cfg.lora.alpha) == (64, 16)
