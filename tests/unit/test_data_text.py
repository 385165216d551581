"""Text from the data in what users open elsewhere: the CSV export cannot run spreadsheet formulas
(engine/extract.py: _inert), the report's chart labels stay short (engine/report/html.py: _legend), and a
terminal line shows it escaped (engine/errors.py: escaped)."""

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


def test_text_for_a_terminal_line_is_escaped_as_python_writes_it_and_cut_where_asked():
    """U+202E was written \\x202e, which reads as a space and '2e'; a 10,000-character node type filled the
    screen five times over in the summary's largest gaps."""
    from engine.errors import escaped

    assert escaped("a\nb\x1b[2J\u202ec\U000e0001") == "a\\x0ab\\x1b[2J\\u202ec\\U000e0001"
    assert escaped("n" * 10_000, 80) == "n" * 79 + "…" and escaped("é" * 80, 80) == "é" * 80


def test_the_suggested_trace_command_pastes_as_the_very_arguments():
    """A key `0$(touch PWNED)` from the data ran `touch` when the suggestion was pasted; an OUT with a space
    split in two."""
    import shlex

    from rich.console import Console

    from engine.report.console import rejection_lines

    key = "0$(touch PWNED) [red]x"
    manifest = {"entities": {"allocation": {"reasons": {"missing_fk": {"rows": 1, "hours": 2.0, "example": key}}}}}
    screen = Console(width=500, record=True)
    screen.print(rejection_lines(manifest, "/tmp/h out")[1])
    shown = screen.export_text().strip()
    assert shlex.split(shown.split("e.g. ", 1)[1]) == ["engine", "trace", "/tmp/h out", "allocation", key]
