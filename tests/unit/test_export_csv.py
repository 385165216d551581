"""The CSV export's text cells cannot run as spreadsheet formulas (engine/extract.py: _inert)."""

import polars as pl

from engine.extract import _inert


def test_text_a_spreadsheet_would_run_gets_a_quote_and_numbers_stay():
    wide = pl.DataFrame(
        {
            "node_type": ['=HYPERLINK("x")', "+1", "-cmd", "@SUM(A1)", "\tx", "gpu_a100", "a=b", None],
            "site": ["tacc", "=x", "tacc", "tacc", "tacc", "tacc", "tacc", "tacc"],
            "total": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        }
    )
    out = _inert(wide)
    assert out["node_type"].to_list() == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-cmd",
        "'@SUM(A1)",
        "'\tx",
        "gpu_a100",
        "a=b",
        None,
    ]
    assert out["site"].to_list() == ["tacc", "'=x", *["tacc"] * 6]  # each column by its own cells
    assert out["total"].to_list() == wide["total"].to_list() and out.schema == wide.schema
