"""Table 5: how well each judge's scores follow the human rankings, per metric (Pearson and Spearman).

Over the (question, model) pairs both the judge and the raters covered: the judge score is the mean over
rounds, the human preference is minus the mean rank over raters (rank 1 is best), so that agreement is a
positive correlation, as in the paper.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

COLUMNS = ["judge", "metric", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n"]


def table5(frame: pd.DataFrame, rankings: pd.DataFrame) -> pd.DataFrame:
    """One row per judge x metric; correlations are NaN below 3 pairs or for a constant side."""
    preference = -rankings.assign(question_id=rankings["question_id"].astype(str)).groupby(
        ["question_id", "model_id"])["rank"].mean()
    scored = frame.dropna(subset=["score"]).assign(question_id=lambda f: f["question_id"].astype(str))
    scores = scored.groupby(["judge", "metric", "question_id", "model_id"])["score"].mean()
    rows = []
    for (judge, metric), block in scores.groupby(level=["judge", "metric"], sort=True):
        joined = pd.concat([block.droplevel(["judge", "metric"]).rename("score"), preference.rename("preference")],
                           axis=1, join="inner")
        x, y = joined["score"].to_numpy(float), joined["preference"].to_numpy(float)
        row = {"judge": judge, "metric": metric, "pearson_r": math.nan, "pearson_p": math.nan,
               "spearman_rho": math.nan, "spearman_p": math.nan, "n": len(joined)}
        if len(joined) >= 3 and x.std() > 0 and y.std() > 0:
            pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
            row.update(pearson_r=float(pearson.statistic), pearson_p=float(pearson.pvalue),
                       spearman_rho=float(spearman.statistic), spearman_p=float(spearman.pvalue))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
