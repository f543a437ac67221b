"""Rater agreement and mean human rank per model, with seeded bootstrap intervals over questions.

    python -m mc16k.humaneval.agreement rankings=<rankings.csv> out_dir=<dir>

writes ``<dir>/human_agreement.csv`` (``statistic,value,ci_low,ci_high,n``) and ``<dir>/human_ranks.csv``
(``model_id,mean_rank,ci_low,ci_high,n``); ``n`` is the number of questions, the unit the bootstrap resamples.

The statistics come from their reference packages, never from hand-written formulas:
- ``cohen_kappa_pairwise_mean``: scikit-learn's unweighted Cohen's kappa for each pair of raters over the
  (question, model) items both ranked, with the rank as the class label, averaged over pairs (the paper's
  statistic; a two-rater statistic, hence the mean over pairs);
- ``fleiss_kappa``: statsmodels' Fleiss' kappa over the items every rater ranked, categories the ranks;
- ``krippendorff_alpha_ordinal``: the ``krippendorff`` package, raters x items, ordinal, missing allowed;
- ``kendall_w``: Kendall's W within each question (k models, m raters) from scipy's Friedman chi-square
  (W = chi2 / (m (k - 1)); ranks have no ties), averaged over questions; ``kendall_w_chi2_p_mean`` is the
  mean of the per-question chi-square p-values.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from mc16k.humaneval.rankings import RankRow, read_rankings

log = logging.getLogger(__name__)

AGREEMENT_COLUMNS = ["statistic", "value", "ci_low", "ci_high", "n"]
RANK_COLUMNS = ["model_id", "mean_rank", "ci_low", "ci_high", "n"]


@dataclass
class BootstrapConfig:
    """Percentile bootstrap over questions (scipy.stats.bootstrap), seeded."""

    n_resamples: int = 1000
    seed: int = 42
    level: float = 0.95


@dataclass
class AgreementConfig:
    """conf/humaneval/agreement.yaml: which rankings, where the two CSVs go, how intervals are drawn."""

    rankings: str = "???"
    out_dir: str = "???"
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass(frozen=True)
class RankCube:
    """Rankings as one raters x items matrix (items = (question, model), NaN = not ranked), in question blocks."""

    raters: list[str]
    questions: list[str]
    models: list[str]
    blocks: list[np.ndarray]  # per question: raters x that question's models
    block_models: list[list[str]]
    n_ranks: int  # categories 1..n_ranks (the most models any question has)

    @classmethod
    def from_rows(cls, rows: list[RankRow]) -> RankCube:
        frame = pd.DataFrame([r.__dict__ for r in rows])
        raters = sorted(frame["rater"].unique())
        questions = sorted(frame["question_id"].unique(), key=_natural_key)
        blocks, block_models = [], []
        for question in questions:
            part = frame[frame["question_id"] == question]
            wide = part.pivot(index="rater", columns="model_id", values="rank").reindex(raters)
            blocks.append(wide.to_numpy(dtype=float))
            block_models.append(list(wide.columns))
        return cls(raters, questions, sorted(frame["model_id"].unique()), blocks, block_models,
                   int(frame["rank"].max()))

    def matrix(self, question_indices: np.ndarray) -> np.ndarray:
        """Raters x items for these questions (a question drawn twice contributes its items twice)."""
        return np.concatenate([self.blocks[int(i)] for i in question_indices], axis=1)


def _natural_key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def cohen_kappa_pairwise_mean(matrix: np.ndarray) -> float:
    """Mean over rater pairs of scikit-learn's unweighted Cohen's kappa on the items both ranked."""
    kappas = []
    for a, b in itertools.combinations(range(matrix.shape[0]), 2):
        both = ~np.isnan(matrix[a]) & ~np.isnan(matrix[b])
        if both.sum() >= 2:
            kappas.append(cohen_kappa_score(matrix[a, both].astype(int), matrix[b, both].astype(int)))
    return float(np.mean(kappas)) if kappas else math.nan


def fleiss_kappa_of_labels(labels: np.ndarray, n_categories: int) -> float:
    """statsmodels' Fleiss' kappa of an items x raters matrix of labels 1..n_categories (complete rows only)."""
    complete = labels[~np.isnan(labels).any(axis=1)]
    if len(complete) == 0 or complete.shape[1] < 2:
        return math.nan
    counts, _ = aggregate_raters(complete.astype(int) - 1, n_cat=n_categories)
    return float(fleiss_kappa(counts, method="fleiss"))


def krippendorff_alpha_ordinal(matrix: np.ndarray, n_ranks: int) -> float:
    """The ``krippendorff`` package's ordinal alpha of a raters x items matrix (NaN = missing)."""
    if matrix.shape[0] < 2:
        return math.nan
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal",
                                    value_domain=list(range(1, n_ranks + 1))))


def kendall_w(block: np.ndarray) -> tuple[float, float]:
    """Kendall's W of one question's raters x models ranks and its chi-square p-value (raters with a full
    ranking only; NaN below 2 raters or 3 models, where scipy's Friedman test is not defined)."""
    full = block[~np.isnan(block).any(axis=1)]
    m, k = full.shape
    if m < 2 or k < 3:
        return math.nan, math.nan
    chi2, p_value = stats.friedmanchisquare(*full.T)
    return float(chi2 / (m * (k - 1))), float(p_value)


def _bootstrap(
    statistic: Callable[[np.ndarray], float | np.ndarray], n_questions: int, cfg: BootstrapConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic(question indices)`` over questions drawn with replacement."""
    with warnings.catch_warnings():
        # degenerate resamples (identical raters: zero variance) are expected, not news
        warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
        warnings.filterwarnings("ignore", category=stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (np.arange(n_questions),), statistic, n_resamples=cfg.n_resamples, vectorized=False,
            confidence_level=cfg.level, method="percentile", rng=np.random.default_rng(cfg.seed),
        )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def agreement_table(rows: list[RankRow], cfg: BootstrapConfig) -> pd.DataFrame:
    """The rows of human_agreement.csv."""
    cube = RankCube.from_rows(rows)
    w_and_p = np.array([kendall_w(block) for block in cube.blocks])
    statistics: dict[str, Callable[[np.ndarray], float]] = {
        "cohen_kappa_pairwise_mean": lambda idx: cohen_kappa_pairwise_mean(cube.matrix(idx)),
        "fleiss_kappa": lambda idx: fleiss_kappa_of_labels(cube.matrix(idx).T, cube.n_ranks),
        "krippendorff_alpha_ordinal": lambda idx: krippendorff_alpha_ordinal(cube.matrix(idx), cube.n_ranks),
        "kendall_w": lambda idx: float(np.nanmean(w_and_p[idx, 0])) if np.isfinite(w_and_p[idx, 0]).any() else math.nan,
        "kendall_w_chi2_p_mean": lambda idx: float(np.nanmean(w_and_p[idx, 1])) if np.isfinite(w_and_p[idx, 1]).any() else math.nan,
    }
    everything = np.arange(len(cube.questions))
    table = []
    for name, statistic in statistics.items():
        value = statistic(everything)
        low = high = math.nan
        if len(cube.questions) >= 2 and not math.isnan(value):
            low, high = (float(x) for x in _bootstrap(statistic, len(cube.questions), cfg))
        table.append({"statistic": name, "value": value, "ci_low": low, "ci_high": high, "n": len(cube.questions)})
    if len(cube.raters) < 2:
        log.warning("only one rater (%s): agreement is not defined", cube.raters[0])
    return pd.DataFrame(table, columns=AGREEMENT_COLUMNS)


def mean_ranks(rows: list[RankRow], cfg: BootstrapConfig) -> pd.DataFrame:
    """The rows of human_ranks.csv: each model's mean rank over raters and questions (1 = best)."""
    cube = RankCube.from_rows(rows)
    sums = np.zeros((len(cube.questions), len(cube.models)))
    counts = np.zeros_like(sums)
    column = {model: j for j, model in enumerate(cube.models)}
    for q, (block, models) in enumerate(zip(cube.blocks, cube.block_models, strict=True)):
        for j, model in enumerate(models):
            ranked = block[~np.isnan(block[:, j]), j]
            sums[q, column[model]] = ranked.sum()
            counts[q, column[model]] = len(ranked)

    def statistic(idx: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums[idx].sum(axis=0) / counts[idx].sum(axis=0)

    value = statistic(np.arange(len(cube.questions)))
    low = high = np.full(len(cube.models), math.nan)
    if len(cube.questions) >= 2:
        low, high = _bootstrap(statistic, len(cube.questions), cfg)
    n_questions = (counts > 0).sum(axis=0)
    return pd.DataFrame(
        {"model_id": cube.models, "mean_rank": value, "ci_low": low, "ci_high": high, "n": n_questions},
        columns=RANK_COLUMNS,
    ).sort_values(["mean_rank", "model_id"], ignore_index=True)


def write_agreement(rankings: str | Path, out_dir: str | Path, cfg: BootstrapConfig) -> dict[str, Path]:
    """Read and validate ``rankings``, then write human_agreement.csv and human_ranks.csv into ``out_dir``."""
    rows = read_rankings(rankings)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"agreement": out / "human_agreement.csv", "ranks": out / "human_ranks.csv"}
    agreement_table(rows, cfg).to_csv(paths["agreement"], index=False)
    mean_ranks(rows, cfg).to_csv(paths["ranks"], index=False)
    return paths


def main() -> None:
    """The Hydra app (conf/humaneval/agreement.yaml)."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig, OmegaConf

    from mc16k.config import register_configs
    from mc16k.paths import config_dir

    register_configs()
    ConfigStore.instance().store(group="humaneval", name="agreement_schema", node=AgreementConfig, package="_global_")

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="humaneval/agreement")
    def app(cfg: DictConfig) -> None:
        typed: AgreementConfig = OmegaConf.to_object(cfg)
        paths = write_agreement(typed.rankings, typed.out_dir, typed.bootstrap)
        print(pd.read_csv(paths["agreement"]).round(3).to_string(index=False))
        print(f"wrote {paths['agreement']} and {paths['ranks']}")

    app()


if __name__ == "__main__":
    main()
