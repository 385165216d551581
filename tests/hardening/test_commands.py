"""Every command is safe on damaged or foreign inputs: `why`, `trace`, `export` on a broken output directory,
`simulate`'s arguments, usage mistakes, and text from the data on the terminal and in the report."""

import json
import shutil

import polars as pl
import pytest

from tests.conftest import SPECS, run_cli
from tests.hardening.support import WINDOW, one_error
from tests.rawdata import tiny_site, write_raw

WHY = ("--metric", "total", "--date", "2024-01-02")


@pytest.fixture
def out(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW).exit_code == 0
    return tmp_path / "out"


def test_drill_down_on_a_damaged_output_is_one_line(out, tmp_path):
    manifest = out / "manifest.json"
    manifest.write_text("{not json")
    for args in (("why", out, *WHY), ("trace", out, "nova_host", "1")):
        assert one_error(run_cli(*args)).startswith(f"{manifest}: damaged, not a manifest of `engine run`")
    manifest.write_text(json.dumps({"specs": str(SPECS)}))  # a key missing
    assert one_error(run_cli("why", out, *WHY)) == f"{manifest}: manifest: missing required field 'data'"
    manifest.unlink()
    assert one_error(run_cli("why", out, *WHY)) == f"{out}: not an output directory of `engine run` (no manifest.json)"


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"specs": 7}, "manifest: specs: expected text, got an integer"),
        ({"specs": None}, "manifest: specs: expected text, got null"),
        ({"data": 7}, "manifest: data: expected text, got an integer"),
        ({"timezone": 5}, "manifest: timezone: expected text or null, got an integer"),
        (
            {"timezone": "Mars/Olympus"},
            "manifest: timezone 'Mars/Olympus' is not an IANA time zone name (e.g. America/Chicago)",
        ),
        (
            {"window": {"start": "2024-01-01T00:00:00+05:00", "end": "2024-01-08 00:00:00"}},
            "manifest: window.start: '2024-01-01T00:00:00+05:00' is not valid: a UTC time as the run writes it",
        ),
        (
            {"window": {"start": "2024-13-01 00:00:00", "end": "2024-01-08 00:00:00"}},
            "damaged, not a manifest of `engine run` (window: month must be in 1..12)",
        ),
        ({"breakdowns": [1]}, "manifest: breakdowns: expected a mapping, got a list"),
    ],
    ids=[
        "specs-int",
        "specs-null",
        "data-int",
        "timezone-int",
        "timezone-unknown",
        "window-offset",
        "month-13",
        "breakdowns-list",
    ],
)
def test_drill_down_on_an_edited_manifest_is_one_line_naming_the_field(out, edit, message):
    """Each was a traceback before (TypeError, ZoneInfoNotFoundError, a comparison of aware and naive times)."""
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | edit))
    for args in (("why", out, *WHY), ("trace", out, "nova_host", "1")):
        assert one_error(run_cli(*args)).startswith(f"{manifest}: {message}")


def test_drill_down_on_json_nested_100000_deep_is_one_line(out):
    manifest = out / "manifest.json"
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    assert one_error(run_cli("why", out, *WHY)).startswith(f"{manifest}: damaged, not a manifest of `engine run` (")


@pytest.mark.parametrize(
    "file, columns, message",
    [
        ("daily.parquet", {"hours": pl.String}, "column 'hours' is String, expected Float64"),
        ("daily.parquet", {"date": None}, "column 'date' is missing, expected Date"),
        (
            "validated/nova_host.parquet",
            {"valid_start": pl.String},
            "column 'valid_start' is String, expected Datetime(time_unit='us', time_zone=None)",
        ),
        ("validated/nova_host.parquet", {"nodes": pl.String}, "column 'nodes' is String, expected Float64"),
        (
            "rejected/nova_host.parquet",
            {"rejection_reason": None},
            "column 'rejection_reason' is missing, expected String",
        ),
    ],
    ids=["daily-hours", "daily-date", "validated-time", "validated-resource", "rejected-reason"],
)
def test_drill_down_on_an_output_with_other_columns_is_one_line(out, file, columns, message):
    """Polars tracebacks before (a comparison of text with a date, a sum of text, a missing column)."""
    path = out / file
    frame = pl.read_parquet(path)
    frame = frame.drop(c for c, t in columns.items() if t is None).cast({c: t for c, t in columns.items() if t})
    frame.write_parquet(path)
    args = ("trace", out, "nova_host", "1") if "rejected" in file or "valid_start" in columns else ("why", out, *WHY)
    assert one_error(run_cli(*args)) == f"{path}: {message}: not as `engine run` writes it"


def test_why_on_the_calendars_last_day_is_outside_the_window(out):
    assert one_error(run_cli("why", out, "--metric", "total", "--date", "9999-12-31")).startswith(
        "--date 9999-12-31: outside this run's window"
    )  # an OverflowError traceback before: the day after it does not exist


def test_drill_down_on_a_damaged_or_missing_checkpoint_is_one_line(out):
    (out / "daily.parquet").write_bytes(b"PAR1 garbage")
    assert one_error(run_cli("why", out, *WHY)).startswith(f"{out / 'daily.parquet'}: not a readable parquet file")
    (out / "daily.parquet").unlink()
    assert one_error(run_cli("why", out, *WHY)) == f"{out / 'daily.parquet'}: missing from the output directory"
    (out / "validated" / "nova_host.parquet").write_text("not parquet")
    message = one_error(run_cli("trace", out, "nova_host", "1"))
    assert message.startswith(f"{out / 'validated' / 'nova_host.parquet'}: not a readable parquet file")


def test_trace_when_the_raw_data_or_specs_moved_away(out, tmp_path):
    shutil.rmtree(tmp_path / "raw")
    assert (
        one_error(run_cli("trace", out, "nova_host", "1")) == f"{tmp_path / 'raw'}: raw data directory does not exist"
    )
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["specs"] = str(tmp_path / "gone")
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert one_error(run_cli("why", out, *WHY)) == f"{tmp_path / 'gone'}: spec path does not exist"


def test_export_of_a_directory_that_is_no_run_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("export", tmp_path / "empty", "--csv", tmp_path / "x.csv")
    assert one_error(result) == f"{tmp_path / 'empty'}: not an output directory of `engine run` (no daily.parquet)"
    assert one_error(run_cli("export", tmp_path / "empty")) == (
        "give --table DATABASE.TABLE (with --db-uri), --csv FILE or --json FILE"
    )
    assert not (tmp_path / "x.csv").exists()


def test_export_writes_the_same_wide_table_as_csv_and_json(out, tmp_path):
    result = run_cli("export", out, "--csv", tmp_path / "d.csv", "--json", tmp_path / "d.json")
    assert result.exit_code == 0, result.stderr
    daily = pl.read_parquet(out / "daily.parquet")
    want = daily.pivot(on="metric", index=["date", "site", "resource", "node_type"], values="hours", sort_columns=True)
    csv = pl.read_csv(tmp_path / "d.csv", try_parse_dates=True)
    rows = json.loads((tmp_path / "d.json").read_text())
    assert csv.height == len(rows) == want.height and csv.columns == list(rows[0]) == want.columns
    cell = want.filter(pl.col("resource") == "nodes").sort("date", "node_type").row(0, named=True)
    got = next(
        r
        for r in rows
        if r["date"] == str(cell["date"]) and r["node_type"] == cell["node_type"] and r["resource"] == "nodes"
    )
    assert got["total"] == cell["total"] and got["committed"] == cell["committed"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "args,message",
    [
        (("hosts=0",), "generator chameleon: hosts: expected a whole number from 2 to 100,000, got 0"),
        (("days=-1",), "generator chameleon: days: expected a whole number from 1 to 36,500, got -1"),
        (("seed=-5",), "generator chameleon: seed: expected a whole number from 0 to 4,294,967,295, got -5"),
        (("hosts=abc",), "generator chameleon: hosts: expected a whole number from 2 to 100,000, got 'abc'"),
        (("kind=cloud",), "generator chameleon: kind: expected one of baremetal, kvm, edge, got 'cloud'"),
        (("colour=red",), "generator chameleon: generate() got an unexpected keyword argument 'colour'"),
        (("hosts",), "'hosts': expected NAME=VALUE"),
        (("hosts=4", "hosts=8"), "hosts given twice"),  # never the last silently winning
        (("--generator", "nope"), "generator: unknown generator 'nope'; installed: chameleon"),
        (
            ("hosts=100000", "days=36500"),
            "generator chameleon: hosts 100000 x days 36500 is more than 25,000,000 host-days (about 40 M rows)",
        ),
    ],
)
def test_simulate_arguments_out_of_range_are_one_line(tmp_path, args, message):
    result = run_cli("simulate", "--out", tmp_path / "sim", *args)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output + result.stderr
    assert result.stderr.strip().splitlines() == [f"✗ {message}"]
    assert not (tmp_path / "sim").exists()


@pytest.mark.parametrize("days", ["1", "2"])
def test_the_smallest_simulated_sites_work(tmp_path, days):
    for kind in ("baremetal", "kvm", "edge"):
        result = run_cli("simulate", "--out", tmp_path / kind, "hosts=2", f"days={days}", f"kind={kind}")
        assert result.exit_code == 0, result.stderr


def test_a_usage_mistake_is_one_line(tmp_path):
    for args, message in (
        (("run", SPECS, "--bogus"), "engine run: No such option '--bogus'."),
        (("nosuch",), "engine: No such command 'nosuch'."),
        (("run",), "engine run: Missing argument 'SPECS_DIR'."),
    ):
        result = run_cli(*args)
        assert result.exit_code == 2 and result.stderr.strip().splitlines()[0].startswith(f"✗ {message}")
        assert len(result.stderr.strip().splitlines()) == 1


HOSTILE = "[red]$x^{2}$ <script>alert(1)</script> \x1b[2J_"


@pytest.mark.filterwarnings("error::UserWarning")  # a control character reaching matplotlib warns (on stderr)
def test_text_from_the_data_is_inert_on_the_terminal_and_in_the_report(tmp_path):
    tables = tiny_site()
    for row in tables["blazar.computehost_extra_capabilities"]:
        row["capability_value"] = HOSTILE  # the node type of every Blazar host
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--plots", tmp_path / "out" / "p", *WINDOW)
    assert result.exit_code == 0, result.stderr
    daily = pl.read_parquet(tmp_path / "out" / "daily.parquet")
    assert HOSTILE in set(daily["node_type"])  # the value itself is kept exactly
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in result.stdout + result.stderr
    why = run_cli(
        "why", tmp_path / "out", "--metric", "reservable", "--date", "2024-01-05", "--where", f"node_type={HOSTILE}"
    )
    assert why.exit_code == 0 and "\x1b" not in why.stdout and "✓ matches" in why.stdout


def test_a_directory_that_is_no_spec_directory_is_not_walked_whole(tmp_path):
    for i in range(2_001):
        (tmp_path / f"f{i}.txt").touch()
    assert one_error(run_cli("validate", tmp_path)) == f"{tmp_path}: more than 2,000 files: not a spec directory"


def test_an_exclusion_date_that_is_no_date_is_one_line(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    (tmp_path / "excl.yaml").write_text(
        "exclusions:\n  - {entity: nova_host, key: 1, valid_from: 2024-13-45, reason: r, added_by: me, added_on: 2024-01-01}\n"
    )
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--exclusions", tmp_path / "excl.yaml")
    assert "exclusions[0]: not a date: month must be in 1..12" in result.stderr and result.exit_code == 1


def test_an_empty_exclusions_path_is_one_line_not_the_default_file(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--exclusions", "")
    assert one_error(result, 2) == "engine run: Invalid value for '--exclusions': an empty path"


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (["node_type=a", "node_type=b"], "--where node_type given twice"),
        (["=a"], "--where '=a': expected COLUMN=VALUE"),
        (["node_type"], "--where 'node_type': expected COLUMN=VALUE"),
    ],
)
def test_a_malformed_where_is_one_line_naming_it(out, where, message):
    args = [a for w in where for a in ("--where", w)]
    assert one_error(run_cli("why", out, *WHY, *args)) == message


def test_an_as_of_series_too_long_for_the_window_is_one_line(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    result = run_cli(
        "run",
        SPECS,
        "--data",
        raw,
        "--out",
        tmp_path / "out",
        "--no-report",
        "--start",
        "2024-01-01",
        "--end",
        "2025-03-01",
        "--lens",
        "projected",
        "--as-of",
        "2024-01-20",
        "--as-of-series",
        "1d",
    )
    assert one_error(result) == (
        "--as-of-series 1d: 425 snapshots over the window, at most 400; choose a longer interval or a shorter "
        "window (--start, --end)"
    )
    assert not (tmp_path / "out").exists()


def test_a_resampling_too_fine_for_the_window_is_one_line_before_any_work(tmp_path):
    """Hourly buckets over 1970-2200 (2,016,000 of them) grew to 22 GB before; 200,000 is 22 years."""
    args = ("run", SPECS, "--data", tmp_path / "raw", "--out", tmp_path / "out", "--no-report", "--resample", "1h")
    write_raw(tmp_path / "raw", tiny_site())
    result = run_cli(*args, "--start", "1970-01-01", "--end", "2200-01-01")
    assert one_error(result) == (
        "--resample 1h: 2,016,144 buckets over the window, at most 200,000; choose a longer interval or a shorter "
        "window (--start, --end)"
    )
    assert not (tmp_path / "out").exists()
    one_more = run_cli(*args, "--start", "2001-04-08T15:00:00", "--end", "2024-02-01")
    assert one_error(one_more).startswith("--resample 1h: 200,001 buckets over the window, at most 200,000;")


def test_extract_never_writes_into_the_specs(tmp_path, specs_copy):
    result = run_cli(
        "extract", "--db-uri", "mysql://u@127.0.0.1:1", "--out", specs_copy / "lookups", "--specs", specs_copy
    )
    assert one_error(result) == (
        f"{specs_copy / 'lookups'}: refusing to write here: it lies inside the specs directory {specs_copy}"
    )


def test_a_path_with_glob_characters_is_a_name_not_a_pattern(tmp_path):
    """`--data 'r*'` read its sibling `rb` too (twice the rows, silently), `export 'o[x]'` exported `ox`."""
    star, sibling = write_raw(tmp_path / "r*", tiny_site()), write_raw(tmp_path / "rb", tiny_site())
    pl.DataFrame({"id": [99]}).write_parquet(sibling / "blazar.leases.parquet")  # the wrong answer if read
    runs = {}
    for name, raw in (("o[x]", star), ("ox", sibling)):
        result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / name, "--no-report", "--json", *WINDOW)
        runs[name] = result
    assert runs["o[x]"].exit_code == 0, runs["o[x]"].stderr
    tables = json.loads(runs["o[x]"].stdout)["tables"]
    assert tables == {t: len(rows) for t, rows in tiny_site().items()}
    shutil.copytree(tmp_path / "o[x]", tmp_path / "plain")
    for name in ("o[x]", "plain"):
        assert run_cli("export", tmp_path / name, "--csv", tmp_path / f"{name}.csv").exit_code == 0
    assert (tmp_path / "o[x].csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
