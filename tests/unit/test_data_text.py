"""Text from the data in what users open elsewhere: the CSV export cannot run spreadsheet formulas
(engine/extract.py: _inert), and the report's chart labels stay short (engine/report/html.py: _legend)."""

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


def test_a_legend_label_from_the_data_is_cut_at_80_characters():
    """A 1 MB node type took matplotlib over two minutes to lay out (the report of a 6-host site)."""
    from engine.report.html import _legend

    assert _legend("n" * 1_000_000) == "n" * 79 + "…"
    assert _legend("gpu_a100") == "gpu_a100" and _legend("_hidden") == " _hidden" and len(_legend("x" * 80)) == 80
