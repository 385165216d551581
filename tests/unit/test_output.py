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


def second_run(out) -> OutputDir:
    """A first run's output committed into `out`, and a second one written, not committed."""
    first = OutputDir(out)
    first.json("manifest.json", {"run": 1})
    first.commit()
    second = OutputDir(out)
    second.json("manifest.json", {"run": 2})
    return second


def test_output_replaces_previous_run_only_on_commit(tmp_path):
    out = tmp_path / "out"
    second = second_run(out)
    assert '"run": 1' in (out / "manifest.json").read_text()  # not yet committed
    second.abandon()
    assert '"run": 1' in (out / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(EngineError, match="output path exists and is not a directory"):
        OutputDir(tmp_path / "f")


def test_a_file_written_into_the_earlier_output_while_the_run_works_is_kept(tmp_path):
    """The check of files the engine did not write ran before the work only: a note written into OUT during a
    long run was deleted with the earlier output at the swap."""
    out = tmp_path / "out"
    second = second_run(out)
    (out / "notes.txt").write_text("written meanwhile")
    with pytest.raises(EngineError, match="it holds notes.txt, which the engine did not write there; move it out"):
        second.commit()
    second.abandon()
    assert (out / "notes.txt").read_text() == "written meanwhile" and '"run": 1' in (out / "manifest.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    "marker",
    [
        '{"kind": "run", "files": "abc"}',
        '{"kind": "run", "files": [["a"]]}',
        '{"kind": ["run"], "files": []}',
        '{"kind": 5}',
        "[" * 100_000 + "]" * 100_000,
        "fifo",
        "/dev/zero",
    ],
)
def test_a_marker_the_engine_could_not_have_written_proves_nothing(tmp_path, marker):
    """`files` not a list let a user's file be deleted; a list in it, a kind that is a list, JSON nested 100,000
    deep were tracebacks; a FIFO hung the run, /dev/zero filled the memory."""
    import os

    out = tmp_path / "out"
    first = OutputDir(out)
    first.commit()
    (out / ".engine-output").unlink()
    if marker == "fifo":
        os.mkfifo(out / ".engine-output")
    elif marker.startswith("/dev/"):
        (out / ".engine-output").symlink_to(marker)
    else:
        (out / ".engine-output").write_text(marker)
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(EngineError, match="the directory is not empty and not an output of the engine"):
        OutputDir(out)
    assert (out / "thesis.tex").read_text() == "mine"
