"""Table 3 (models x metrics x judges) as CSV, Markdown and LaTeX, plus agreement and failure tables."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mc16k.judging.rubric import Rubric


def _cell(mean: float, low: float, high: float, marked: bool) -> str:
    if math.isnan(mean):
        return "–"
    text = f"{mean:.2f}"
    if not math.isnan(low):
        text += f" ± {(high - low) / 2:.2f}"
    return text + ("*" if marked else "")


def table3(summary: pd.DataFrame, average: pd.DataFrame, significance: pd.DataFrame, rubric: Rubric) -> pd.DataFrame:
    """Wide table: one row per model, one column per judge x metric (mean ± CI half-width, * = p < 0.05 vs
    its base), then the paper's average over all judge x metric means."""
    marked = set()
    if not significance.empty:
        hits = significance[significance["significant"]]
        marked = set(zip(hits["judge"], hits["model_id"], hits["metric"], strict=True))
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
                row[column] = _cell(r["mean"], r["ci_low"], r["ci_high"], (judge, model, metric) in marked)
        avg = average[average["model_id"] == model]
        row["Average"] = f"{avg['average'].iloc[0]:.2f}" if not avg.empty else "–"
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


CAPTION = (
    "Judge scores (1-10) per model and metric: mean ± 95% CI half-width over questions and rounds; "
    "* fine-tuned differs from its base, two-sample t-test over rounds, p < 0.05; "
    "Average = mean of all judge x metric means (14 with two judges)."
)


def write_tables(
    out_dir: Path,
    summary: pd.DataFrame,
    average: pd.DataFrame,
    significance: pd.DataFrame,
    agreement: pd.DataFrame,
    length: pd.DataFrame,
    failures: pd.DataFrame,
    rubric: Rubric,
) -> dict[str, Path]:
    """results.csv, table3.md, table3.tex, significance.csv, agreement.md/.csv, failures.csv; returns paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wide = table3(summary, average, significance, rubric)
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
        f"# Table 3\n\n{judges}\n\n{CAPTION}\n\n{_markdown(wide)}\n\n## Failed judgments per judge and model\n\n"
        f"{_markdown(failures)}\n",
        encoding="utf-8",
    )
    paths["table3_tex"].write_text(_latex(wide, f"{judges} {CAPTION}"), encoding="utf-8")
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
