"""Statistics over a long table of judgments (one row per judge x model x round x question x metric).

Columns used: ``judge, model_id, kind, base_model, round, question_id, metric, score`` (NaN for a failed
judgment), ``status`` and ``answer_words``. Failed judgments are counted, never averaged.
"""

from __future__ import annotations

import collections
import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two-sided t confidence interval; the interval is NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * stats.sem(values))
    return mean, mean - half, mean + half


def summarize(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean score and CI per judge x model x metric, with counts of scored and failed judgments."""
    rows = []
    for (judge, model, metric), group in frame.groupby(["judge", "model_id", "metric"], sort=True):
        mean, low, high = mean_ci(group["score"].to_numpy(), level)
        rows.append(
            {
                "judge": judge,
                "model_id": model,
                "kind": group["kind"].iloc[0],
                "base_model": group["base_model"].iloc[0],
                "metric": metric,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "n": int(group["score"].notna().sum()),
                "n_failed": int((group["status"] != "ok").sum()),
            }
        )
    return pd.DataFrame(rows)


def paper_average(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's headline number: per model, the mean of its judge x metric means (14 with two judges)."""
    grouped = summary.dropna(subset=["mean"]).groupby("model_id")["mean"]
    return pd.DataFrame({"average": grouped.mean(), "n_scores": grouped.size()}).reset_index()


def _correlations(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": len(x)}
    return {
        "pearson": float(stats.pearsonr(x, y)[0]),
        "spearman": float(stats.spearmanr(x, y)[0]),
        "n": len(x),
    }


def judge_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per metric and judge pair: Pearson and Spearman correlation over answers both judges scored."""
    scored = frame.dropna(subset=["score"])
    wide = scored.pivot_table(
        index=["model_id", "round", "question_id", "metric"], columns="judge", values="score", aggfunc="mean"
    )
    rows = []
    for judge_a, judge_b in itertools.combinations(sorted(wide.columns), 2):
        for metric, block in wide[[judge_a, judge_b]].dropna().groupby(level="metric"):
            rows.append({"metric": metric, "judge_a": judge_a, "judge_b": judge_b,
                         **_correlations(block[judge_a].to_numpy(), block[judge_b].to_numpy())})
    return pd.DataFrame(rows, columns=["metric", "judge_a", "judge_b", "pearson", "spearman", "n"])


def length_bias(frame: pd.DataFrame) -> pd.DataFrame:
    """Per judge: correlation of an answer's mean score (over metrics) with its length in words."""
    scored = frame.dropna(subset=["score"])
    per_answer = scored.groupby(["judge", "model_id", "round", "question_id"]).agg(
        score=("score", "mean"), answer_words=("answer_words", "first")
    )
    rows = []
    for judge, block in per_answer.groupby(level="judge"):
        rows.append({"judge": judge, **_correlations(block["answer_words"].to_numpy(float), block["score"].to_numpy())})
    return pd.DataFrame(rows, columns=["judge", "pearson", "spearman", "n"])


def failure_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed judgments per judge and model, with the most common kinds of reason (what to fix)."""
    failed = frame[frame["status"] != "ok"]
    totals = frame.groupby(["judge", "model_id"]).size().rename("judgments")
    fails = failed.groupby(["judge", "model_id"]).size().rename("failed")
    table = pd.concat([totals, fails], axis=1).fillna(0).astype(int)
    kinds = failed.groupby(["judge", "model_id"])["reason"].agg(
        lambda reasons: "; ".join(
            f"{kind} x{count}" for kind, count in collections.Counter(r.split(":")[0] for r in reasons).most_common(3)
        )
    )
    table["reasons"] = kinds.reindex(table.index).fillna("")
    table = table.reset_index()
    table["failed_pct"] = (100 * table["failed"] / table["judgments"]).round(2)
    return table
