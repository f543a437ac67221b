"""Statistics against hand computations: t confidence intervals, the paper's 14-score average, judge
agreement, length bias and failure counts (significance tests: test_stats_significance.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mc16k.stats.summary import (
    failure_counts,
    judge_agreement,
    length_bias,
    mean_ci,
    paper_average,
    summarize,
)


def test_mean_ci_is_the_t_interval_and_ignores_failures():
    mean, low, high = mean_ci(np.array([4.0, 6.0, 8.0, np.nan]))
    half = stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3)  # sd 2, n 3
    assert mean == 6.0 and low == pytest.approx(6 - half) and high == pytest.approx(6 + half)
    assert math.isnan(mean_ci(np.array([5.0]))[1]) and math.isnan(mean_ci(np.array([]))[0])


def frame() -> pd.DataFrame:
    """Two judges, a base and its fine-tune, 3 rounds x 4 questions x 2 metrics; one failure."""
    rows = []
    rng = np.random.default_rng(0)
    for judge in ("j1", "j2"):
        for model, kind, shift in (("base", "base", 0.0), ("tuned", "finetuned", 2.0)):
            for rnd in (1, 2, 3):
                for q in range(4):
                    for metric in ("m1", "m2"):
                        score = float(np.clip(np.round(4 + shift + rng.normal(0, 0.5) + q * 0.3), 1, 10))
                        rows.append({"judge": judge, "model_id": model, "kind": kind, "base_model": "B",
                                     "round": rnd, "question_id": q, "metric": metric, "score": score,
                                     "status": "ok", "reason": "", "answer_words": 50 + 10 * q})
    rows[0].update(score=float("nan"), status="failed", reason="api: gave up after 7 attempts")
    return pd.DataFrame(rows)


def test_summary_and_average():
    data = frame()
    summary = summarize(data)
    assert len(summary) == 2 * 2 * 2
    first = summary[(summary.judge == "j1") & (summary.model_id == "base") & (summary.metric == "m1")].iloc[0]
    assert first["n"] == 11 and first["n_failed"] == 1
    average = paper_average(summary).set_index("model_id")
    assert average.loc["tuned", "n_scores"] == 4  # judges x metrics (14 with the paper's 2 x 7)
    assert average.loc["tuned", "average"] == pytest.approx(
        summary[summary.model_id == "tuned"]["mean"].mean()
    )


def test_agreement_length_bias_and_failures():
    data = frame()
    agreement = judge_agreement(data)
    assert list(agreement["metric"]) == ["m1", "m2"] and list(agreement["n"]) == [23, 24]  # one failed score
    assert agreement["pearson"].between(-1, 1).all()
    bias = length_bias(data)
    assert list(bias["judge"]) == ["j1", "j2"] and (bias["spearman"] > 0).all()  # longer answers score higher here
    failures = failure_counts(data).set_index(["judge", "model_id"])
    assert failures.loc[("j1", "base"), "failed"] == 1 and failures.loc[("j1", "base"), "reasons"] == "api x1"
    assert failures.loc[("j2", "tuned"), "failed"] == 0
