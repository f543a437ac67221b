"""Grouped bar plots: for each judge, one group of bars per metric, one bar per model, with 95% CIs."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mc16k.judging.rubric import Rubric  # noqa: E402


def _file_name(judge: str) -> str:
    return "scores_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", judge).strip("_") + ".png"


def plot_scores(summary: pd.DataFrame, rubric: Rubric, out_dir: Path) -> list[Path]:
    """One PNG per judge; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for judge, block in summary.groupby("judge", sort=True):
        models = sorted(block["model_id"].unique())
        x = np.arange(len(rubric.metrics))
        width = 0.8 / max(1, len(models))
        fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(rubric.metrics)), 4.5))
        for i, model in enumerate(models):
            rows = block[block["model_id"] == model].set_index("metric").reindex(rubric.metric_keys)
            means = rows["mean"].to_numpy(float)
            errors = ((rows["ci_high"] - rows["ci_low"]) / 2).to_numpy(float)
            ax.bar(x + (i - (len(models) - 1) / 2) * width, means, width, yerr=np.nan_to_num(errors), capsize=2,
                   label=model)
        ax.set_xticks(x, [m.name.replace(" & ", " &\n") for m in rubric.metrics], fontsize=8)
        ax.set_ylim(0, rubric.score_max)
        ax.set_ylabel(f"score ({rubric.score_min}-{rubric.score_max}), 95% CI")
        ax.set_title(f"Judge: {judge}")
        ax.legend(fontsize=7, ncol=min(4, len(models)), loc="upper center", bbox_to_anchor=(0.5, -0.16))
        fig.tight_layout()
        path = out_dir / _file_name(judge)
        fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps the legend below the axes
        plt.close(fig)
        paths.append(path)
    return paths


def plot_human_ranks(ranks: pd.DataFrame, out_dir: Path) -> Path:
    """human_ranks.png: mean human rank per model (1 = best) with its 95% bootstrap interval over questions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = ranks.sort_values("mean_rank", ascending=False)
    y = np.arange(len(ordered))
    low = (ordered["mean_rank"] - ordered["ci_low"]).to_numpy(float)
    high = (ordered["ci_high"] - ordered["mean_rank"]).to_numpy(float)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(ordered) + 1.5))
    ax.errorbar(ordered["mean_rank"], y, xerr=np.nan_to_num([low, high]), fmt="o", capsize=3)
    ax.set_yticks(y, [f"{m} (n={n})" for m, n in zip(ordered["model_id"], ordered["n"], strict=True)], fontsize=8)
    ax.set_xlim(0.5, max(2, int(np.nanmax(ordered["ci_high"].fillna(ordered["mean_rank"])))) + 0.5)
    ax.set_xlabel("mean human rank (1 = best), 95% bootstrap CI over questions; n = questions")
    ax.set_title("Human ranking")
    fig.tight_layout()
    path = out_dir / "human_ranks.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
