"""``python -m mc16k.data.stats data=both``: the paper's Table 1 for the configured files.

Rows are counted on load, never assumed (reported totals differ between the paper and the hub card); the
paper's averages are printed beside ours for reference.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from mc16k.config import register_configs
from mc16k.data.prepare import SourceReport, prepare_rows
from mc16k.paths import config_dir
from mc16k.tasks.cli import run_task

# MentalChat16K paper, Table 1 (its row labels are swapped; these follow the text): input, output words
PAPER_AVG_WORDS = {"interview": (69.94, 235.85), "synthetic": (111.24, 363.94)}

_COLUMNS = (
    ("source", 10, "{:<10}"),
    ("file", 28, "{:<28}"),
    ("rows read", 9, "{:>9}"),
    ("bad skipped", 11, "{:>11}"),
    ("< min words", 11, "{:>11}"),
    ("duplicates", 10, "{:>10}"),
    ("rows kept", 9, "{:>9}"),
    ("avg input words", 15, "{:>15}"),
    ("avg output words", 16, "{:>16}"),
    ("paper in/out", 15, "{:>15}"),
)


def format_table1(reports: dict[str, SourceReport]) -> str:
    """Per-source rows and average words (over kept rows), a total line, and the instruction check."""

    def line(cells: list[object]) -> str:
        return "  ".join(fmt.format(cell) for (_, _, fmt), cell in zip(_COLUMNS, cells, strict=True))

    def averages(kept: list[SourceReport]) -> tuple[str, str]:
        n = sum(r.kept for r in kept)
        if n == 0:
            return "-", "-"
        return (
            f"{sum(r.avg_input_words * r.kept for r in kept) / n:.2f}",
            f"{sum(r.avg_output_words * r.kept for r in kept) / n:.2f}",
        )

    out = [line([name for name, _, _ in _COLUMNS])]
    for report in reports.values():
        paper = PAPER_AVG_WORDS.get(report.source)
        out.append(
            line(
                [
                    report.source,
                    Path(report.file).name,
                    report.read,
                    report.skipped,
                    report.too_short,
                    report.duplicates,
                    report.kept,
                    *averages([report]),
                    f"{paper[0]:.2f}/{paper[1]:.2f}" if paper else "-",
                ]
            )
        )
    total = list(reports.values())
    out.append(
        line(
            [
                "total",
                "",
                sum(r.read for r in total),
                sum(r.skipped for r in total),
                sum(r.too_short for r in total),
                sum(r.duplicates for r in total),
                sum(r.kept for r in total),
                *averages(total),
                "",
            ]
        )
    )
    differs = ", ".join(f"{r.source} {r.instruction_differs}" for r in total)
    out.append(f"rows whose instruction differs from prompt.system: {differs}")
    return "\n".join(out)


def print_table1(cfg: DictConfig) -> None:
    prepared = prepare_rows(cfg.data, cfg.prompt.system)
    where = cfg.data.root if cfg.data.root is not None else f"hub {cfg.data.hub_repo}"
    print(f"MentalChat16K Table 1 — data={cfg.data.name} ({where})")
    print(format_table1(prepared.reports))


def main() -> None:
    """The Hydra app (conf/data_stats.yaml); the config dir is found when the app starts, not on import."""
    register_configs()
    hydra.main(config_path=config_dir(), config_name="data_stats", version_base="1.3")(lambda cfg: run_task(print_table1, cfg))()


if __name__ == "__main__":
    main()
