"""Judge benchmark answers with an LLM judge on the 7 counseling metrics and write Table 3 (see conf/evaluate.yaml).

    python evaluate.py judge=gpt-4-turbo                   # key from OPENAI_API_KEY
    python evaluate.py judge=gemini-pro evaluate.dry_run=true
    python evaluate.py experiment=demo                     # local SmolLM2 judge, CPU, offline
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mc16k.tasks.evaluate import JudgingStopped, register_configs, run_evaluation

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        run_evaluation(cfg)
    except JudgingStopped as stopped:  # endpoint down, refused request, bad key: one line, exit status 1
        raise SystemExit(f"evaluate.py: {stopped}") from None


if __name__ == "__main__":
    main()
