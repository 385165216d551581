"""Checkpoint schemas are checked at the stage boundary; output directories are replaced atomically."""

import polars as pl
import pytest

from engine.errors import EngineError
from engine.io.output import SPAN, OutputDir, check_schema


def test_drift_names_stage_column_and_expected_type():
    df = pl.DataFrame({c: pl.Series([], dtype=t) for c, t in SPAN.items()}).with_columns(
        pl.col("span_hours").cast(pl.Int64)
    )
    with pytest.raises(EngineError, match=r"stage spans/x: column 'span_hours' is Int64, expected Float64"):
        check_schema(df, "spans/x", SPAN)
    with pytest.raises(EngineError, match=r"stage spans/x: column 'nodes' is missing \(expected Float64\)"):
        check_schema(
            df.with_columns(pl.col("span_hours").cast(pl.Float64)), "spans/x", SPAN, extra={"nodes": pl.Float64}
        )


def test_nulls_in_a_not_null_column_stop_the_run():
    df = pl.DataFrame({"entity": ["a", None], "entity_id": ["1", "2"], "rejection_reason": ["x", "y"]})
    with pytest.raises(EngineError, match="column 'entity' has 1 nulls, expected none"):
        check_schema(df, "rejected/a", {"entity": pl.String})


def test_output_replaces_previous_run_only_on_commit(tmp_path):
    out = tmp_path / "out"
    first = OutputDir(out)
    first.json("manifest.json", {"run": 1})
    first.commit()
    second = OutputDir(out)
    second.json("manifest.json", {"run": 2})
    assert '"run": 1' in (out / "manifest.json").read_text()  # not yet committed
    second.abandon()
    assert '"run": 1' in (out / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(EngineError, match="output path exists and is not a directory"):
        OutputDir(tmp_path / "f")
