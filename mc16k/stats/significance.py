"""Is a fine-tune better than its base? One test per judge x metric x fine-tune, corrected per judge.

Both models answer the same questions, so the default test pairs them by question: the paired t-test on
per-question means over rounds (``paired_t``), or the Wilcoxon signed-rank test on the same pairs. The
paper's two-sample t-test on per-round means (5 vs 5, pairing ignored) is kept as ``paper``, and Welch's
unequal-variance version of it as ``welch``. p-values are corrected across metrics x models within each
judge with statsmodels' ``multipletests`` (Holm, Benjamini-Hochberg or none). A test that is not defined
(fewer than two rounds for the round tests, fewer than two question pairs or no non-zero difference for the
paired ones) has p = NaN and ``tested = False``: Table 3 shows "n/t" there, never a silent "not significant".
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mc16k.judging.config import Correction, SignificanceTest, StatsConfig

DESCRIPTIONS = {
    SignificanceTest.paper: "two-sample t-test on per-round means (the paper's test)",
    SignificanceTest.welch: "Welch's t-test on per-round means",
    SignificanceTest.paired_t: "paired t-test on per-question means over rounds",
    SignificanceTest.wilcoxon: "Wilcoxon signed-rank test on per-question means over rounds",
}
CORRECTIONS = {Correction.holm: "Holm", Correction.fdr_bh: "Benjamini-Hochberg", Correction.none: "no"}
COLUMNS = [
    "judge", "model_id", "base_model_id", "metric", "mean_finetuned", "mean_base", "test", "rounds", "n_pairs",
    "statistic", "p", "tested", "correction", "p_adjusted", "alpha", "significant",
]


def describe(cfg: StatsConfig) -> str:
    """One sentence for captions: which test and correction produced the marks."""
    return (f"{DESCRIPTIONS[cfg.test]}, {CORRECTIONS[cfg.correction]} correction across metrics x models per judge, "
            f"alpha {cfg.alpha:g}")


def base_model_of(frame: pd.DataFrame) -> dict[str, str]:
    """Fine-tuned model id -> the model id answering as its base (kind == base, same base_model)."""
    models = frame.drop_duplicates("model_id")[["model_id", "kind", "base_model"]]
    bases = {row.base_model: row.model_id for row in models.itertuples() if row.kind == "base"}
    return {
        row.model_id: bases[row.base_model]
        for row in models.itertuples()
        if row.kind == "finetuned" and row.base_model in bases
    }


def _round_test(tuned: np.ndarray, base: np.ndarray, equal_var: bool) -> tuple[float, float]:
    if len(tuned) < 2 or len(base) < 2:
        return math.nan, math.nan
    result = stats.ttest_ind(tuned, base, equal_var=equal_var)
    return float(result.statistic), float(result.pvalue)


def _paired_test(tuned: np.ndarray, base: np.ndarray, test: SignificanceTest) -> tuple[float, float]:
    if len(tuned) < 2 or not np.any(tuned != base):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: scipy warns and returns inf/NaN
        if test is SignificanceTest.paired_t:
            result = stats.ttest_rel(tuned, base)
        else:
            result = stats.wilcoxon(tuned, base)
    return float(result.statistic), float(result.pvalue)


def significance(frame: pd.DataFrame, cfg: StatsConfig | None = None) -> pd.DataFrame:
    """One row per judge x metric x fine-tune with its base: the test, raw and corrected p, and the mark."""
    cfg = cfg or StatsConfig()
    pairs = base_model_of(frame)
    scored = frame.dropna(subset=["score"])
    round_means = scored.groupby(["judge", "model_id", "metric", "round"])["score"].mean()
    question_means = scored.groupby(["judge", "model_id", "metric", "question_id"])["score"].mean()
    rows = []
    for (judge, metric), _ in scored.groupby(["judge", "metric"], sort=True):
        for tuned, base in sorted(pairs.items()):
            try:
                tuned_rounds = round_means.loc[(judge, tuned, metric)]
                base_rounds = round_means.loc[(judge, base, metric)]
                tuned_questions = question_means.loc[(judge, tuned, metric)]
                base_questions = question_means.loc[(judge, base, metric)]
            except KeyError:
                continue
            paired = pd.concat([tuned_questions, base_questions], axis=1, join="inner")
            if cfg.test in (SignificanceTest.paper, SignificanceTest.welch):
                statistic, p_value = _round_test(tuned_rounds.to_numpy(), base_rounds.to_numpy(),
                                                 equal_var=cfg.test is SignificanceTest.paper)
            else:
                statistic, p_value = _paired_test(paired.iloc[:, 0].to_numpy(), paired.iloc[:, 1].to_numpy(), cfg.test)
            rows.append({
                "judge": judge, "model_id": tuned, "base_model_id": base, "metric": metric,
                "mean_finetuned": float(tuned_rounds.mean()), "mean_base": float(base_rounds.mean()),
                "test": cfg.test.value, "rounds": f"{len(tuned_rounds)} vs {len(base_rounds)}",
                "n_pairs": len(paired), "statistic": statistic, "p": p_value, "tested": not math.isnan(p_value),
            })
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame(rows, columns=COLUMNS[:12])
    table["correction"] = cfg.correction.value
    table["p_adjusted"] = math.nan
    table["alpha"] = cfg.alpha
    table["significant"] = False
    for _, block in table[table["tested"]].groupby("judge"):
        if cfg.correction is Correction.none:
            reject, adjusted = block["p"].to_numpy() < cfg.alpha, block["p"].to_numpy()
        else:
            reject, adjusted, _, _ = multipletests(block["p"].to_numpy(), alpha=cfg.alpha, method=cfg.correction.value)
        table.loc[block.index, "p_adjusted"] = adjusted
        table.loc[block.index, "significant"] = reject
    table["significant"] = table["significant"].astype(bool)
    return table[COLUMNS]
