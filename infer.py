"""Answer a benchmark with base models, fine-tuned runs and baselines (see conf/infer.yaml).

python infer.py model=mistral-7b                       # a base model
python infer.py infer.from_runs=multirun/paper infer.baselines='[samantha-1.11-7b]'
python infer.py experiment=demo                        # the CPU demo: base SmolLM2 + its demo adapter
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from mc16k.config import register_configs
from mc16k.inference.runner import run_inference
from mc16k.inference.tracking import tracker_metrics

log = logging.getLogger("infer")

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    reports = run_inference(cfg, metrics_logger=lambda: tracker_metrics(cfg))
    for report in reports:
        log.info(
            "%s (%s): %d answered, %d already done, %d truncated prompt(s); files: %s",
            report.model_id,
            report.kind,
            report.answered,
            report.already_done,
            report.truncated,
            report.files,
        )


if __name__ == "__main__":
    main()
