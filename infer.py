"""Answer a benchmark with base models, fine-tuned runs and baselines (see conf/infer.yaml).

python infer.py model=mistral-7b                       # a base model
python infer.py infer.from_runs=multirun/paper infer.baselines='[samantha-1.11-7b]'
python infer.py experiment=demo                        # the CPU demo: base SmolLM2 + its demo adapter
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mc16k.tasks.infer import infer, register_configs, run_task

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    run_task(infer, cfg)


if __name__ == "__main__":
    main()
