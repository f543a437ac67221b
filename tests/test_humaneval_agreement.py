"""Rater agreement against the reference packages (1e-9), hand-checked cases, bootstrap intervals, the
rankings file's validation and the Hydra app end to end."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from mc16k.humaneval.agreement import (
    BootstrapConfig,
    agreement_table,
    fleiss_kappa_of_labels,
    mean_ranks,
)
from mc16k.humaneval.rankings import RankRow, read_rankings, write_rankings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["base", "tuned-a", "tuned-b", "samantha", "psych"]
FAST = BootstrapConfig(n_resamples=100, seed=7)


def noisy_rankings(n_raters: int = 4, n_questions: int = 8, seed: int = 0) -> list[RankRow]:
    """Raters who share a latent quality order per question plus their own noise: partial agreement."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(1, n_questions + 1):
        latent = rng.normal(0, 1, len(MODELS)) + np.arange(len(MODELS)) * 0.4
        for r in range(n_raters):
            ranks = stats.rankdata(latent + rng.normal(0, 0.8, len(MODELS))).astype(int)
            rows += [RankRow(f"rater{r}", str(q), m, int(k), "2026-12-03T10:00:00") for m, k in zip(MODELS, ranks, strict=True)]
    return rows


def values(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["statistic"], table["value"], strict=True))


def test_every_statistic_equals_its_reference_package():
    rows = noisy_rankings()
    got = values(agreement_table(rows, FAST))
    # the same data laid out independently: rater -> [(question, model) -> rank]
    by_rater = {}
    for row in rows:
        by_rater.setdefault(row.rater, {})[(row.question_id, row.model_id)] = row.rank
    raters = sorted(by_rater)
    items = sorted(by_rater[raters[0]])
    labels = np.array([[by_rater[r][item] for item in items] for r in raters])  # raters x items
    kappas = [cohen_kappa_score(labels[a], labels[b]) for a, b in itertools.combinations(range(len(raters)), 2)]
    assert got["cohen_kappa_pairwise_mean"] == pytest.approx(np.mean(kappas), abs=1e-9)
    assert got["fleiss_kappa"] == pytest.approx(fleiss_kappa(aggregate_raters(labels.T)[0]), abs=1e-9)
    assert got["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=labels.astype(float), level_of_measurement="ordinal"), abs=1e-9)
    # Kendall's W by its textbook formula 12 S / (m^2 (k^3 - k)), per question, then the mean
    m, k = len(raters), len(MODELS)
    ws, ps = [], []
    for q in sorted({i[0] for i in items}):
        sums = np.array([sum(by_rater[r][(q, model)] for r in raters) for model in MODELS])
        w = 12 * ((sums - sums.mean()) ** 2).sum() / (m**2 * (k**3 - k))
        ws.append(w)
        ps.append(stats.chi2.sf(m * (k - 1) * w, k - 1))
    assert got["kendall_w"] == pytest.approx(np.mean(ws), abs=1e-9)
    assert got["kendall_w_chi2_p_mean"] == pytest.approx(np.mean(ps), abs=1e-9)
    assert 0 < got["cohen_kappa_pairwise_mean"] < 1 and 0 < got["kendall_w"] < 1  # partial agreement


def test_identical_raters_agree_perfectly():
    one = [r for r in noisy_rankings(n_raters=1)]
    rows = [RankRow(name, r.question_id, r.model_id, r.rank, r.submitted_at) for name in ("ann", "bob", "cy") for r in one]
    table = agreement_table(rows, FAST).set_index("statistic")
    for name in ("cohen_kappa_pairwise_mean", "fleiss_kappa", "krippendorff_alpha_ordinal", "kendall_w"):
        assert table.loc[name, "value"] == pytest.approx(1.0, abs=1e-12), name
        assert table.loc[name, "ci_low"] == pytest.approx(1.0) and table.loc[name, "ci_high"] == pytest.approx(1.0)
    assert set(table["n"]) == {8}


def test_fleiss_textbook_example():
    """Fleiss (1971) as reproduced on Wikipedia's 'Fleiss' kappa' page: 14 raters, 10 items, 5 categories,
    P-bar = 0.378, P-bar_e = 0.213, kappa = 0.210."""
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    labels = np.array([[c + 1 for c, n in enumerate(row) for _ in range(n)] for row in counts], dtype=float)
    assert labels.shape == (10, 14)
    assert fleiss_kappa_of_labels(labels, 5) == pytest.approx(0.210, abs=5e-4)


def test_missing_rankings_use_what_each_statistic_can():
    rows = noisy_rankings()
    dropped = [r for r in rows if not (r.rater == "rater3" and r.question_id == "1")]
    table = values(agreement_table(dropped, FAST))
    complete = [r for r in rows if r.question_id != "1"]  # Fleiss needs every rater: question 1 drops out
    assert table["fleiss_kappa"] == pytest.approx(values(agreement_table(complete, FAST))["fleiss_kappa"], abs=1e-12)
    assert not np.isnan(table["krippendorff_alpha_ordinal"]) and not np.isnan(table["cohen_kappa_pairwise_mean"])


def test_bootstrap_intervals_are_seeded_and_cover_the_value():
    rows = noisy_rankings()
    first, again = agreement_table(rows, FAST), agreement_table(rows, FAST)
    other = agreement_table(rows, BootstrapConfig(n_resamples=100, seed=8))
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["ci_low"], other["ci_low"])
    assert (first["ci_low"] <= first["value"]).all() and (first["value"] <= first["ci_high"]).all()
    assert (first["ci_high"] - first["ci_low"] > 0).all()


def test_mean_ranks_are_the_plain_means_with_intervals():
    rows = noisy_rankings()
    ranks = mean_ranks(rows, FAST).set_index("model_id")
    frame = pd.DataFrame([r.__dict__ for r in rows])
    expected = frame.groupby("model_id")["rank"].mean()
    assert ranks["mean_rank"].to_dict() == pytest.approx(expected.to_dict(), abs=1e-12)
    assert (ranks["ci_low"] <= ranks["mean_rank"]).all() and (ranks["mean_rank"] <= ranks["ci_high"]).all()
    assert set(ranks["n"]) == {8} and list(ranks.index)[0] == expected.idxmin()


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["rater", "question_id", "model_id", "rank", "submitted_at"], *rows])
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["a", "1", "x", "1", ""], ["a", "1", "y", "1", ""]], r":3: rater 'a' gives rank 1 twice .*also at line 2"),
        ([["a", "1", "x", "1", ""], ["a", "1", "y", "2", ""], ["b", "1", "x", "1", ""]], r":4: rater 'b' did not rank y"),
        ([["a", "1", "x", "first", ""]], r":2: field 'rank' must be an integer"),
        ([["a", "1", "x", "1", ""], ["a", "1", "y", "3", ""]], r":3: rank 3 is outside 1..2"),
        ([["a", "1", "x", "1", ""], ["a", "1", "x", "2", ""]], r":3: rater 'a' ranks model 'x' on question '1' twice"),
        ([["a", "1", "x", "1", "yesterday"]], r":2: field 'submitted_at' must be an ISO 8601 time"),
        ([["a", "", "x", "1", ""]], r":2: field 'question_id' is empty"),
    ],
)
def test_bad_rankings_name_the_file_and_row(tmp_path, rows, message):
    path = write_csv(tmp_path / "rankings.csv", rows)
    with pytest.raises(ValueError, match=r"rankings\.csv" + message):
        read_rankings(path)


def test_expected_models_and_header_are_checked(tmp_path):
    path = write_csv(tmp_path / "r.csv", [["a", "1", "x", "1", ""], ["a", "1", "y", "2", ""]])
    with pytest.raises(ValueError, match=r"r\.csv:3: model_id 'y' is not one of question '1'"):
        read_rankings(path, expected_models={"1": {"x", "z"}})
    with pytest.raises(ValueError, match=r"r\.csv:2: question_id '1' is not one of the questions"):
        read_rankings(path, expected_models={"2": {"x", "y"}})
    path.write_text("rater,question,model_id,rank\n")
    with pytest.raises(ValueError, match=r"r\.csv:1: missing column\(s\) question_id, submitted_at"):
        read_rankings(path)


def test_write_then_read_round_trips(tmp_path):
    rows = noisy_rankings(n_raters=2, n_questions=3)
    back = read_rankings(write_rankings(tmp_path / "rankings.csv", rows))
    assert sorted(back, key=lambda r: (r.rater, r.question_id, r.model_id)) == sorted(
        rows, key=lambda r: (r.rater, r.question_id, r.model_id))


def test_the_hydra_app_writes_both_files(tmp_path):
    rankings = write_rankings(tmp_path / "rankings.csv", noisy_rankings())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mc16k.humaneval.agreement", f"rankings={rankings}", f"out_dir={tmp_path / 'out'}",
         "bootstrap.n_resamples=50", f"hydra.run.dir={tmp_path / 'hydra'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    agreement = pd.read_csv(tmp_path / "out" / "human_agreement.csv")
    assert list(agreement.columns) == ["statistic", "value", "ci_low", "ci_high", "n"]
    assert list(agreement["statistic"]) == ["cohen_kappa_pairwise_mean", "fleiss_kappa", "krippendorff_alpha_ordinal",
                                            "kendall_w", "kendall_w_chi2_p_mean"]
    assert agreement["value"].to_numpy() == pytest.approx(
        agreement_table(noisy_rankings(), BootstrapConfig(n_resamples=50))["value"].to_numpy(), abs=1e-12)
    ranks = pd.read_csv(tmp_path / "out" / "human_ranks.csv")
    assert list(ranks.columns) == ["model_id", "mean_rank", "ci_low", "ci_high", "n"] and len(ranks) == len(MODELS)
    assert "kendall_w" in done.stdout
