"""Fine-tuned vs base: each test equals scipy's on the same numbers, Holm/BH equal statsmodels', undefined
tests are 'not tested' (never 'not significant'), and Table 3's marks and caption say which is which."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mc16k.judging.config import Correction, SignificanceTest, StatsConfig
from mc16k.judging.rubric import Metric, Rubric
from mc16k.reporting.tables import caption, table3
from mc16k.stats.significance import describe, significance
from mc16k.stats.summary import paper_average, summarize


def frame(rounds: int = 3, shift: float = 0.6, questions: int = 10) -> pd.DataFrame:
    """One judge, a base and two fine-tunes, ``rounds`` x ``questions`` x 2 metrics; question effects shared."""
    rng = np.random.default_rng(1)
    question_effect = rng.normal(0, 1.5, questions)
    rows = []
    for model, kind, delta in (("base", "base", 0.0), ("tuned", "finetuned", shift), ("flat", "finetuned", 0.05)):
        for rnd in range(1, rounds + 1):
            for q in range(questions):
                for metric in ("m1", "m2"):
                    score = 5 + delta + question_effect[q] + rng.normal(0, 0.4)
                    rows.append({"judge": "j", "model_id": model, "kind": kind, "base_model": "B", "round": rnd,
                                 "question_id": q, "metric": metric, "score": score, "status": "ok", "reason": "",
                                 "answer_words": 10})
    return pd.DataFrame(rows)


def scores(data: pd.DataFrame, model: str, metric: str, by: str) -> np.ndarray:
    part = data[(data.model_id == model) & (data.metric == metric)]
    return part.groupby(by)["score"].mean().to_numpy()


@pytest.mark.parametrize("test", list(SignificanceTest))
def test_each_test_is_scipys_on_the_right_units(test):
    data = frame()
    table = significance(data, StatsConfig(test=test, correction=Correction.none)).set_index(["model_id", "metric"])
    row = table.loc[("tuned", "m1")]
    by = "round" if test in (SignificanceTest.paper, SignificanceTest.welch) else "question_id"
    tuned, base = scores(data, "tuned", "m1", by), scores(data, "base", "m1", by)
    expected = {
        SignificanceTest.paper: lambda: stats.ttest_ind(tuned, base),
        SignificanceTest.welch: lambda: stats.ttest_ind(tuned, base, equal_var=False),
        SignificanceTest.paired_t: lambda: stats.ttest_rel(tuned, base),
        SignificanceTest.wilcoxon: lambda: stats.wilcoxon(tuned, base),
    }[test]()
    assert row["p"] == pytest.approx(expected.pvalue, rel=1e-12) and row["test"] == test.value
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert row["rounds"] == "3 vs 3" and row["n_pairs"] == 10 and bool(row["tested"])


@pytest.mark.parametrize("method", [Correction.holm, Correction.fdr_bh])
def test_correction_is_statsmodels_across_metrics_and_models_per_judge(method):
    data = frame()
    second = data.assign(judge="k", score=data["score"] + np.random.default_rng(2).normal(0, 0.3, len(data)))
    both = pd.concat([data, second], ignore_index=True)
    table = significance(both, StatsConfig(correction=method, alpha=0.05))
    for judge, block in table.groupby("judge"):
        assert len(block) == 4  # 2 metrics x 2 fine-tunes
        reject, adjusted, _, _ = multipletests(block["p"].to_numpy(), alpha=0.05, method=method.value)
        assert block["p_adjusted"].to_numpy() == pytest.approx(adjusted, rel=1e-12), judge
        assert list(block["significant"]) == list(reject)
    assert (table["p_adjusted"] >= table["p"] - 1e-15).all()


def test_undefined_tests_are_not_tested():
    one_round = frame(rounds=1)
    paper = significance(one_round, StatsConfig(test=SignificanceTest.paper))
    assert not paper["tested"].any() and paper["p"].isna().all() and not paper["significant"].any()
    assert set(paper["rounds"]) == {"1 vs 1"}
    assert significance(one_round, StatsConfig())["tested"].all()  # the paired test needs questions, not rounds
    same = frame()
    same.loc[same.model_id == "flat", "score"] = same.loc[same.model_id == "base", "score"].to_numpy()
    wilcoxon = significance(same, StatsConfig(test=SignificanceTest.wilcoxon)).set_index(["model_id", "metric"])
    assert not wilcoxon.loc[("flat", "m1"), "tested"] and wilcoxon.loc[("tuned", "m1"), "tested"]


def rubric() -> Rubric:
    metrics = (Metric("m1", "Metric One", "d", {}), Metric("m2", "Metric Two", "d", {}))
    return Rubric(version="t", metrics=metrics, templates={}, score_min=1, score_max=10)


def test_table3_marks_significant_and_not_tested_cells_and_the_caption_says_which():
    data = frame(rounds=1)
    summary = summarize(data)
    cfg = StatsConfig(test=SignificanceTest.paper)
    tests = significance(data, cfg)
    wide = table3(summary, paper_average(summary), tests, rubric()).set_index("Model")
    assert wide.loc["tuned", "Metric One"].endswith(" n/t") and not wide.loc["base", "Metric One"].endswith("n/t")
    text = caption(describe(cfg), tests)
    assert "two-sample t-test on per-round means (the paper's test), Holm correction" in text
    assert "n/t = not tested" in text and "fewer than two rounds" in text
    data = frame(rounds=5, shift=2.0)
    tests = significance(data, StatsConfig())
    wide = table3(summarize(data), paper_average(summarize(data)), tests, rubric()).set_index("Model")
    assert wide.loc["tuned", "Metric One"].endswith("*") and "n/t" not in caption(describe(StatsConfig()), tests)
    assert not math.isnan(tests["p_adjusted"].iloc[0])


def test_table5_correlates_score_with_minus_rank():
    from mc16k.stats.human import table5

    data = frame(rounds=2)
    per_pair = data[data.metric == "m1"].groupby(["question_id", "model_id"])["score"].mean()
    rankings = []
    for q, block in per_pair.groupby(level="question_id"):
        ordered = block.droplevel("question_id").sort_values(ascending=False)
        for rater in ("a", "b"):
            rankings += [{"rater": rater, "question_id": str(q), "model_id": m, "rank": i + 1}
                         for i, m in enumerate(ordered.index)]
    ranks = pd.DataFrame(rankings)
    table = table5(data, ranks).set_index("metric")
    mean_rank = ranks.groupby(["question_id", "model_id"])["rank"].mean()
    x = per_pair.rename(index=str, level="question_id").reindex(mean_rank.index)
    assert table.loc["m1", "pearson_r"] == pytest.approx(stats.pearsonr(x, -mean_rank).statistic, rel=1e-12)
    assert table.loc["m1", "pearson_r"] > 0 and table.loc["m1", "spearman_rho"] > 0  # agreement is positive
    assert table.loc["m1", "n"] == 30
