"""Judge benchmark answers with an LLM judge on the 7 counseling metrics and write Table 3 (see conf/evaluate.yaml).

    python evaluate.py judge=gpt-4-turbo                   # key from OPENAI_API_KEY
    python evaluate.py judge=gemini-pro evaluate.dry_run=true
    python evaluate.py experiment=demo                     # local SmolLM2 judge, CPU, offline
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mc16k.tasks.evaluate import register_configs, run_evaluation, run_task

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_task(run_evaluation, cfg)  # a stopped judging run (endpoint down, bad key) is a user error: exit 2


if __name__ == "__main__":
    main()
