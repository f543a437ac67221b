"""Fine-tune a base model on a MentalChat16K split with QLoRA (Hydra entry point).

    python train.py experiment=demo
    python train.py -m 'model=glob(*)' data=synthetic,interview,both
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mc16k.tasks.train import register_configs, run_task, train

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one job; the returned validation loss lets sweepers (Optuna, Nevergrad) compare jobs."""
    return run_task(train, cfg)


if __name__ == "__main__":
    main()
