"""`python -m mc16k.data.stats`: Table 1 for the bundled sample and, unchanged, for a hub-named mirror."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mc16k.config import register_configs
from mc16k.data.prepare import prepare_rows
from mc16k.paths import resource_path
from mc16k.tasks.data_stats import format_table1

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("overrides", [["data=sample"], ["data=both"]], ids=["sample", "both-defaults-to-sample"])
def test_table1_for_the_sample_via_compose(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="data_stats", overrides=overrides)
    table = format_table1(prepare_rows(cfg.data, cfg.prompt.system).reports).splitlines()
    interview = next(line for line in table if line.startswith("interview")).split()
    synthetic = next(line for line in table if line.startswith("synthetic")).split()
    # source, file, read, skipped, < min words, duplicates, kept, avg in, avg out, paper
    assert interview[2:7] == ["46", "0", "3", "2", "41"]
    assert synthetic[2:7] == ["44", "0", "0", "1", "43"]
    assert float(interview[7]) > 0 and float(synthetic[8]) > 0
    assert table[-1] == "rows whose instruction differs from prompt.system: interview 2, synthetic 0"


def test_app_on_a_hub_named_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(resource_path("data/sample"), mirror)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mc16k.data.stats",
            "data=both",
            f"data.root={mirror}",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert f"data=both ({mirror})" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()}
    assert rows["interview"][1:3] == ["Interview_Data_6K.csv", "46"]
    assert rows["synthetic"][1:3] == ["Synthetic_Data_10K.csv", "44"]
    assert rows["total"][1] == "90"


def test_app_reads_the_hub_when_root_is_null():
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="data_stats", overrides=["data=both", "data.root=null"])
    assert cfg.data.root is None and cfg.data.hub_repo == "ShenLab/MentalChat16K"
