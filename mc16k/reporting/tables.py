"""Table 3 (models x metrics x judges) as CSV, Markdown and LaTeX, plus agreement and failure tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mc16k.judging.rubric import Rubric

NOT_TESTED = "n/t"


def _cell(mean: float, low: float, high: float, mark: str) -> str:
    if math.isnan(mean):
        return "–"
    text = f"{mean:.2f}"
    if not math.isnan(low):
        text += f" ± {(high - low) / 2:.2f}"
    return text + (f" {mark}" if mark == NOT_TESTED else mark)


def _marks(significance: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(judge, model, metric) -> "*" (significant after correction), "n/t" (test not defined) or ""."""
    if significance.empty:
        return {}
    return {
        (row.judge, row.model_id, row.metric): "*" if row.significant else ("" if row.tested else NOT_TESTED)
        for row in significance.itertuples()
    }


def table3(
    summary: pd.DataFrame, average: pd.DataFrame, significance: pd.DataFrame, rubric: Rubric,
    human_ranks: pd.DataFrame | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Wide table: one row per model, one column per judge x metric (mean ± CI half-width, * = significant
    vs its base, n/t = not tested), the paper's average over all judge x metric means, and with human
    rankings the mean Human Rank (1 = best) with its bootstrap interval."""
    ranks = {} if human_ranks is None else {r.model_id: r for r in human_ranks.itertuples()}
    marks = _marks(significance)
    names = {m.key: m.name for m in rubric.metrics}
    judges = sorted(summary["judge"].unique())
    rows = []
    for model, block in summary.groupby("model_id", sort=True):
        row = {"Model": model, "Kind": block["kind"].iloc[0] or ""}
        for judge in judges:
            for metric in rubric.metric_keys:
                hit = block[(block["judge"] == judge) & (block["metric"] == metric)]
                column = f"{judge}: {names[metric]}" if len(judges) > 1 else names[metric]
                if hit.empty:
                    row[column] = "–"
                    continue
                r = hit.iloc[0]
                row[column] = _cell(r["mean"], r["ci_low"], r["ci_high"], marks.get((judge, model, metric), ""))
        avg = average[average["model_id"] == model]
        row["Average"] = f"{avg['average'].iloc[0]:.2f}" if not avg.empty else "–"
        if human_ranks is not None:
            rank = ranks.get(model)
            row["Human Rank"] = "–" if rank is None else (
                f"{rank.mean_rank:.2f}" + ("" if math.isnan(rank.ci_low) else f" [{rank.ci_low:.2f}, {rank.ci_high:.2f}]"))
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text.replace("±", r"$\pm$").replace("–", "--")


def _latex(frame: pd.DataFrame, caption: str) -> str:
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{" + "l" * 2 + "r" * (len(frame.columns) - 2) + "}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
        *(" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_latex_escape(caption)}}}",
        r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def caption(test_description: str, significance: pd.DataFrame) -> str:
    """Table 3's caption: what the cells are, which test and correction made the marks, and what n/t means."""
    text = (
        "Judge scores (1-10) per model and metric: mean ± 95% CI half-width over questions and rounds; "
        f"* fine-tuned differs from its base ({test_description}); "
    )
    if not significance.empty and not significance["tested"].all():
        text += (f"{NOT_TESTED} = not tested: the test is not defined here (fewer than two rounds per model for "
                 "a test on round means; fewer than two question pairs or no difference at all for a paired "
                 "test), so no mark does not mean 'not significant'; ")
    return text + "Average = mean of all judge x metric means (14 with two judges)."


def write_tables(
    out_dir: Path,
    summary: pd.DataFrame,
    average: pd.DataFrame,
    significance: pd.DataFrame,
    agreement: pd.DataFrame,
    length: pd.DataFrame,
    failures: pd.DataFrame,
    rubric: Rubric,
    test_description: str,
    human_ranks: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """results.csv, table3.md, table3.tex, significance.csv, agreement.md/.csv, failures.csv; returns paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wide = table3(summary, average, significance, rubric, human_ranks)
    text = caption(test_description, significance)
    if human_ranks is not None:
        text += (" Human Rank = mean rank over raters and questions (1 = best), 95% bootstrap interval over "
                 "questions.")
    paths = {
        "results": out_dir / "results.csv",
        "table3_md": out_dir / "table3.md",
        "table3_tex": out_dir / "table3.tex",
        "significance": out_dir / "significance.csv",
        "agreement_md": out_dir / "agreement.md",
        "agreement_csv": out_dir / "agreement.csv",
        "failures": out_dir / "failures.csv",
    }
    summary.merge(average, on="model_id", how="left").to_csv(paths["results"], index=False)
    significance.to_csv(paths["significance"], index=False)
    agreement.to_csv(paths["agreement_csv"], index=False)
    failures.to_csv(paths["failures"], index=False)
    judges = "Judges: " + "; ".join(sorted(summary["judge"].unique())) + "."
    paths["table3_md"].write_text(
        f"# Table 3\n\n{judges}\n\n{text}\n\n{_markdown(wide)}\n\n## Failed judgments per judge and model\n\n"
        f"{_markdown(failures)}\n",
        encoding="utf-8",
    )
    paths["table3_tex"].write_text(_latex(wide, f"{judges} {text}"), encoding="utf-8")
    agreement_text = f"# Judge agreement\n\n{judges}\n\n"
    agreement_text += (
        "Per metric, correlation between judges over answers both scored.\n\n" + _markdown(agreement.round(3))
        if not agreement.empty
        else "Only one judge in the store: no agreement to compute.\n"
    )
    agreement_text += (
        "\n\n## Length bias\n\nPer judge, correlation of an answer's mean score with its length in words "
        "(a strong positive value means longer answers score higher regardless of quality).\n\n"
        + _markdown(length.round(3))
        + "\n"
    )
    paths["agreement_md"].write_text(agreement_text, encoding="utf-8")
    return paths


TABLE5_CAPTION = (
    "Table 5: correlation between each judge's score and human preference per metric, over the (question, "
    "model) pairs both covered (judge score: mean over rounds; human preference: minus the mean rank over "
    "raters, since rank 1 is best, so that agreement is positive as in the paper); n pairs, two-sided p."
)


def write_table5(out_dir: Path, table: pd.DataFrame, rubric: Rubric) -> dict[str, Path]:
    """table5.csv (long form) and table5.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"table5_csv": out_dir / "table5.csv", "table5_md": out_dir / "table5.md"}
    table.to_csv(paths["table5_csv"], index=False)
    names = {m.key: m.name for m in rubric.metrics}
    shown = table.assign(metric=table["metric"].map(lambda k: names.get(k, k))).rename(columns={
        "judge": "Judge", "metric": "Metric", "pearson_r": "Pearson r", "pearson_p": "p (Pearson)",
        "spearman_rho": "Spearman rho", "spearman_p": "p (Spearman)"})
    for column in ("Pearson r", "Spearman rho"):
        shown[column] = shown[column].round(3)
    for column in ("p (Pearson)", "p (Spearman)"):
        shown[column] = shown[column].map(lambda p: "–" if math.isnan(p) else f"{p:.3g}")
    paths["table5_md"].write_text(f"# Table 5\n\n{TABLE5_CAPTION}\n\n{_markdown(shown)}\n", encoding="utf-8")
    return paths
