"""Loaders on the bundled sample, a hub-named local mirror and an offline hub cache; every bad input gives
one error naming file, row and column; filters, dedupe and the seeded split account for every row."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from mc16k.data.config import DataConfig, OnBadRow, OnMissingMarker
from mc16k.data.loading import DataValidationError, Row, load_source, resolve_files
from mc16k.data.prepare import content_hash, prepare_rows
from mc16k.paths import resource_path

SAMPLE_DIR = Path(resource_path("data/sample"))
SYSTEM = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/prompt/counseling.yaml").system
GOOD = {"instruction": "Be kind.", "input": "I feel low most days.", "output": "That sounds hard."}


def write_csv(path: Path, rows: list[dict], columns=("instruction", "input", "output")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def assert_names(err: pytest.ExceptionInfo, path: Path, row: int | str, column: str) -> None:
    message = str(err.value)
    assert str(path) in message and f"row {row}" in message and repr(column) in message, message


def test_sample_loads_with_counts_that_add_up():
    prepared = prepare_rows(DataConfig(name="sample", root=str(SAMPLE_DIR)), SYSTEM)
    interview, synthetic = prepared.reports["interview"], prepared.reports["synthetic"]
    assert (interview.read, synthetic.read) == (46, 44)
    assert interview.too_short == 3 and synthetic.too_short == 0  # 40-word filter is for interviews only
    assert (interview.duplicates, synthetic.duplicates) == (2, 1)
    assert interview.instruction_differs == 2
    for report in (interview, synthetic):
        assert (
            report.read == report.skipped + report.too_short + report.duplicates + report.train + report.val
        )
        assert report.val >= 1
    assert len(prepared.train) + len(prepared.val) == interview.kept + synthetic.kept
    assert {row.source for row in prepared.train} == {"interview", "synthetic"}


def test_split_is_seeded():
    def split(seed: int) -> list[tuple[str, int]]:
        prepared = prepare_rows(
            DataConfig(name="sample", root=str(SAMPLE_DIR), seed=seed, val_fraction=0.2), SYSTEM
        )
        return [(row.source, row.row) for row in prepared.val]

    assert split(1) == split(1) != split(2)


def test_validation_rows_of_a_source_do_not_depend_on_the_other_sources_loaded():
    def prepared(sources: list[str], seed: int = 42):
        cfg = DataConfig(name="x", root=str(SAMPLE_DIR), sources=sources, seed=seed, val_fraction=0.2)
        return prepare_rows(cfg, SYSTEM)

    def held_out(data) -> set[tuple[str, int]]:
        return {(row.source, row.row) for row in data.val}

    both, interview, synthetic = prepared(["interview", "synthetic"]), prepared(["interview"]), prepared(["synthetic"])
    # data=both drops a synthetic row that repeats an interview row; it can be in val(synthetic) only
    interview_pairs = {(row.input, row.output) for row in interview.train + interview.val}
    repeats = {(row.source, row.row) for row in synthetic.val if (row.input, row.output) in interview_pairs}
    assert held_out(both) == held_out(interview) | (held_out(synthetic) - repeats)
    assert {source for source, _ in held_out(both)} == {"interview", "synthetic"}
    assert held_out(prepared(["synthetic"], seed=7)) != held_out(synthetic)


def test_run_dir_lists_the_validation_rows_by_source_file_row_and_content(tmp_path):
    prepared = prepare_rows(DataConfig(name="both", root=str(SAMPLE_DIR), val_fraction=0.2), SYSTEM)
    record = prepared.split_record()["validation"]
    assert len(record) == len(prepared.val) > 2
    for entry in record:
        rows = load_source(SAMPLE_DIR / DataConfig().files[entry["source"]], entry["source"]).rows
        (row,) = [r for r in rows if r.row == entry["row"]]
        assert content_hash(row) == entry["content_hash"]
    with (SAMPLE_DIR / "Interview_Data_6K.csv").open(newline="") as handle:
        data_rows = list(csv.DictReader(handle))  # row n is the n-th row under the header
    first = next(entry for entry in record if entry["source"] == "interview")
    file_row = data_rows[first["row"] - 1]
    assert content_hash(Row("interview", first["row"], "", file_row["input"].strip(), file_row["output"].strip())) == first["content_hash"]


@pytest.mark.parametrize(("name", "sources"), [("interview", ["interview"]), ("synthetic", ["synthetic"])])
def test_single_source_splits(name, sources):
    prepared = prepare_rows(DataConfig(name=name, root=str(SAMPLE_DIR), sources=sources), SYSTEM)
    assert list(prepared.reports) == sources
    assert {row.source for row in prepared.train + prepared.val} == set(sources)


def test_local_mirror_with_hub_names_works_unchanged(tmp_path):
    for name in ("Interview_Data_6K.csv", "Synthetic_Data_10K.csv"):
        shutil.copy(SAMPLE_DIR / name, tmp_path / name)
    mirror = prepare_rows(DataConfig(name="both", root=str(tmp_path)), SYSTEM)
    sample = prepare_rows(DataConfig(name="sample", root=str(SAMPLE_DIR)), SYSTEM)
    assert [(r.source, r.row) for r in mirror.train] == [(r.source, r.row) for r in sample.train]


def test_hub_files_resolve_from_an_offline_cache(tmp_path, monkeypatch):
    """A pre-populated Hugging Face cache (the layout hf_hub_download writes) serves both files offline."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    repo_dir = tmp_path / "datasets--ShenLab--MentalChat16K"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("Interview_Data_6K.csv", "Synthetic_Data_10K.csv"):
        shutil.copy(SAMPLE_DIR / name, snapshot / name)

    cfg = DataConfig(name="both", hub_cache_dir=str(tmp_path))
    files = resolve_files(cfg)
    assert files == {
        "interview": snapshot / "Interview_Data_6K.csv",
        "synthetic": snapshot / "Synthetic_Data_10K.csv",
    }
    prepared = prepare_rows(cfg, SYSTEM)
    assert (prepared.reports["interview"].read, prepared.reports["synthetic"].read) == (46, 44)

    cfg.files = {"interview": "Not_There.csv", "synthetic": "Synthetic_Data_10K.csv"}
    with pytest.raises(
        DataValidationError, match="ShenLab/MentalChat16K, file Not_There.csv: cannot be fetched"
    ):
        resolve_files(cfg)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_other_formats_load_the_same_rows(tmp_path, suffix):
    frame = pd.read_csv(SAMPLE_DIR / "Synthetic_Data_10K.csv")
    path = tmp_path / f"Synthetic_Data_10K{suffix}"
    if suffix == ".json":
        frame.to_json(path, orient="records")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    rows = load_source(path, "synthetic").rows
    expected = load_source(SAMPLE_DIR / "Synthetic_Data_10K.csv", "synthetic").rows
    assert [(r.row, r.input, r.output) for r in rows] == [(r.row, r.input, r.output) for r in expected]


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "Interview_Data_6K.csv"
    with pytest.raises(DataValidationError, match="file not found") as err:
        load_source(path, "interview")
    assert str(path) in str(err.value)


def test_missing_column_in_csv_header(tmp_path):
    path = write_csv(tmp_path / "data.csv", [GOOD], columns=("instruction", "input"))
    with pytest.raises(DataValidationError, match="missing") as err:
        load_source(path, "interview")
    assert_names(err, path, 0, "output")


def test_missing_column_in_a_jsonl_row(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({"instruction": "x", "input": "y"}) + "\n")
    with pytest.raises(DataValidationError, match="missing value") as err:
        load_source(path, "interview")
    assert_names(err, path, 2, "output")


def test_empty_cell(tmp_path):
    path = write_csv(tmp_path / "data.csv", [GOOD, GOOD, {**GOOD, "input": "   "}])
    with pytest.raises(DataValidationError, match="empty") as err:
        load_source(path, "interview")
    assert_names(err, path, 3, "input")
    assert "data.on_bad_row=skip" in str(err.value)


def test_non_text_cell_in_jsonl(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [GOOD, {**GOOD, "output": 42}]))
    with pytest.raises(DataValidationError, match="not text") as err:
        load_source(path, "synthetic")
    assert_names(err, path, 2, "output")


def test_non_text_column_in_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({**{c: [GOOD[c]] * 2 for c in GOOD}, "output": [7, 42]}).to_parquet(path)
    with pytest.raises(DataValidationError, match="not text") as err:
        load_source(path, "synthetic")
    assert_names(err, path, 1, "output")


def test_undecodable_bytes(tmp_path):
    path = write_csv(tmp_path / "data.csv", [GOOD, {**GOOD, "output": "caf\u00e9 time"}])
    path.write_bytes(path.read_bytes().replace("caf\u00e9".encode(), b"caf\xe9"))  # latin-1 byte, not UTF-8
    with pytest.raises(DataValidationError, match="undecodable bytes") as err:
        load_source(path, "interview")
    assert_names(err, path, 2, "output")
    assert r"\xe9" in str(err.value)


def test_a_nan_cell_is_warned_about_naming_file_row_and_column(tmp_path, caplog):
    # before: a literal "nan" (a pandas export of an empty cell) became training text without a word
    path = write_csv(tmp_path / "data.csv", [GOOD, {**GOOD, "output": "nan"}, {**GOOD, "input": "NULL"}])
    loaded = load_source(path, "interview")
    assert [r.output for r in loaded.rows] == ["That sounds hard.", "nan", "That sounds hard."]
    assert f"{path}: 2 cells read like a missing-value marker" in caplog.text
    assert "row 2, column 'output': the cell reads 'nan'" in caplog.text
    caplog.clear()
    assert len(load_source(path, "interview", on_missing_marker=OnMissingMarker.keep).rows) == 3
    assert "missing-value marker" not in caplog.text
    with pytest.raises(DataValidationError, match="the cell reads 'nan'") as err:
        load_source(path, "interview", on_missing_marker=OnMissingMarker.bad_row)
    assert_names(err, path, 2, "output")
    skipped = load_source(path, "interview", OnBadRow.skip, OnMissingMarker.bad_row)
    assert [r.row for r in skipped.rows] == [1] and [b.row for b in skipped.skipped] == [2, 3]


def test_invalid_json_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(DataValidationError, match="not valid JSON") as err:
        load_source(path, "interview")
    assert str(path) in str(err.value) and "row 2" in str(err.value)


def test_skip_mode_counts_bad_rows(tmp_path):
    bad = [{**GOOD, "input": ""}, {**GOOD, "output": "   "}]
    path = write_csv(tmp_path / "Interview_Data_6K.csv", [GOOD, *bad, {**GOOD, "input": "Another worry."}])
    loaded = load_source(path, "interview", OnBadRow.skip)
    assert [r.row for r in loaded.rows] == [1, 4]
    assert [(b.row, b.column) for b in loaded.skipped] == [(2, "input"), (3, "output")]

    write_csv(tmp_path / "Synthetic_Data_10K.csv", [GOOD])
    prepared = prepare_rows(
        DataConfig(name="both", root=str(tmp_path), on_bad_row=OnBadRow.skip, min_words={}, val_fraction=0.0),
        SYSTEM,
    )
    assert prepared.reports["interview"].read == 4 and prepared.reports["interview"].skipped == 2
    assert prepared.reports["synthetic"].duplicates == 1  # the same pair already came from the interview file


def test_unknown_source_and_bad_fraction_are_named(tmp_path):
    with pytest.raises(DataValidationError, match="data.sources names"):
        resolve_files(DataConfig(name="x", root=str(tmp_path), sources=["forum"]))
    with pytest.raises(DataValidationError, match="data.val_fraction"):
        prepare_rows(DataConfig(name="x", root=str(SAMPLE_DIR), val_fraction=1.5), SYSTEM)
