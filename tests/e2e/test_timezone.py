"""Local-time days: a site run in America/Chicago across both clock changes of 2024 equals the simulator's
brute-force truth, whose days come from the standard library's zoneinfo (not from the engine's code)."""

import json
from datetime import date, datetime

import polars as pl
import pytest

from simulator.chameleon import simulate
from tests.conftest import SPECS, run_cli

ZONE = "America/Chicago"
BASE = ["total", "reservable", "committed", "occupied_reservation", "occupied_ondemand"]


@pytest.fixture(scope="module")
def chicago(tmp_path_factory):
    """March through November 2024: clocks go forward on 2024-03-10 and back on 2024-11-03."""
    from datetime import datetime

    base = tmp_path_factory.mktemp("tz")
    simulate(base / "raw", seed=5, hosts=10, days=275, start=datetime(2024, 3, 1), timezone=ZONE)
    args = ["run", SPECS, "--data", base / "raw", "--out", base / "out", "--timezone", ZONE, "--no-report"]
    window = ["--start", "2024-02-29T18:00:00", "--end", "2024-11-30T18:00:00"]  # the simulated UTC days, in CST
    result = run_cli(*args, *window, "--resample", "7d", "--resample", "1mo")
    assert result.exit_code == 0, result.stderr
    return base


def nodes(path, metric: str | None = None) -> pl.DataFrame:
    df = pl.read_parquet(path).filter(pl.col("resource") == "nodes")
    return df.filter(pl.col("metric") == metric) if metric else df.filter(pl.col("metric").is_in(BASE))


def test_local_days_equal_the_brute_force_truth_across_both_clock_changes(chicago):
    truth = pl.read_parquet(chicago / "raw" / "simulation" / "truth_daily.parquet").with_columns(
        pl.col("date").cast(pl.Date)
    )
    daily = nodes(chicago / "out" / "daily.parquet")
    both = truth.join(daily, on=["date", "node_type", "metric"], how="full", coalesce=True)
    both = both.with_columns(pl.col("hours", "hours_right").fill_null(0.0))
    assert both["date"].n_unique() == 276 and truth["hours"].sum() > 0
    assert both.select((pl.col("hours") - pl.col("hours_right")).abs().max()).item() < 1e-6


def test_a_clock_change_day_has_23_or_25_hours(chicago):
    total = nodes(chicago / "out" / "daily.parquet", "total").group_by("date").agg(pl.col("hours", "mean").sum())
    days = {d: (h, m) for d, h, m in total.rows()}
    for day, length in ((date(2024, 3, 9), 24), (date(2024, 3, 10), 23), (date(2024, 11, 3), 25)):
        hours, fleet = days[day]  # no host joins or leaves on these days: the mean level is a whole fleet
        assert fleet == round(fleet) > 0
        assert hours == pytest.approx(length * fleet)


def test_resampled_buckets_conserve_the_local_days(chicago):
    daily = nodes(chicago / "out" / "daily.parquet")["hours"].sum()
    for every in ("7d", "1mo"):
        buckets = nodes(chicago / "out" / f"resampled_{every}.parquet")
        assert buckets["hours"].sum() == pytest.approx(daily, rel=1e-12)
    months = nodes(chicago / "out" / "resampled_1mo.parquet", "total")
    starts = months["bucket"].unique().sort().dt.strftime("%m-%d %H:%M").to_list()
    # months from the window start on the local clocks: 18:00 CST and CDT alike (23:00 and 00:00 UTC)
    assert starts == [f"{m:02}-29 18:00" for m in range(2, 12)]


def test_the_legacy_report_in_local_days_flags_only_the_perturbed_cells(chicago):
    comparison = pl.read_parquet(chicago / "out" / "comparison.parquet")
    meta = json.loads((chicago / "raw" / "simulation" / "simulation.json").read_text())
    perturbed = {(p["date"], p["node_type"]) for p in meta["legacy_perturbed"] if p["truth"] != p["legacy"]}
    flagged = {(str(d), nt) for d, nt in comparison.filter("flagged").select("date", "node_type").rows()}
    assert flagged == perturbed


def test_the_manifest_and_why_use_the_time_zone(chicago):
    manifest = json.loads((chicago / "out" / "manifest.json").read_text())
    assert manifest["timezone"] == ZONE
    assert manifest["window"]["start"] == "2024-03-01 00:00:00"  # 18:00 CST = UTC-6
    assert manifest["window"]["local_start"] == "2024-02-29 18:00:00"
    result = run_cli("why", chicago / "out", "--metric", "total", "--date", "2024-03-10", "--json")
    answer = json.loads(result.stdout)
    assert answer["matches"] and answer["total"] == pytest.approx(answer["daily"])
    assert {s["hours"] for s in answer["spans"]} == {23.0}


def test_an_unknown_zone_or_a_skipped_clock_time_is_one_line(tmp_path, chicago):
    out = tmp_path / "out"
    bad = run_cli("run", SPECS, "--data", chicago / "raw", "--out", out, "--timezone", "Mars/Olympus")
    assert bad.exit_code == 1 and "--timezone 'Mars/Olympus' is not an IANA time zone name" in bad.stderr
    assert not out.exists()
    for zone, hint in (("america/chicago", "(did you mean 'America/Chicago'?)"), ("", "(e.g. America/Chicago)")):
        bad = run_cli("run", SPECS, "--data", chicago / "raw", "--out", out, "--timezone", zone)
        assert bad.exit_code == 1 and f"--timezone '{zone}' is not an IANA time zone name {hint}" in bad.stderr
    # in the tz database of the system (and of the tzdata package), not a zone of Polars: no "did you mean" itself
    bad = run_cli("run", SPECS, "--data", chicago / "raw", "--out", out, "--timezone", "Factory")
    assert bad.exit_code == 1 and "--timezone 'Factory' is not a time zone the engine can use" in bad.stderr
    skipped = ["--timezone", ZONE, "--start", "2024-03-10T02:30:00"]
    bad = run_cli("run", SPECS, "--data", chicago / "raw", "--out", out, *skipped)
    assert bad.exit_code == 1 and "skip this time" in bad.stderr and not out.exists()


def test_a_site_declares_its_time_zone_and_the_flag_overrides_it(tmp_path, chicago):
    sites = tmp_path / "sites.yaml"
    sites.write_text(f"sites:\n  chi:\n    name: CHI\n    data: {chicago / 'raw'}\n    timezone: {ZONE}\n")
    for flags, zone in (([], ZONE), (["--timezone", "UTC"], "UTC")):
        out = tmp_path / f"out-{zone.replace('/', '-')}"
        result = run_cli("run", SPECS, "--sites", sites, "--site", "chi", "--out", out, "--no-report", *flags)
        assert result.exit_code == 0, result.stderr
        assert json.loads((out / "manifest.json").read_text())["timezone"] == zone
    sites.write_text(f"sites:\n  chi:\n    name: CHI\n    data: {chicago / 'raw'}\n    timezone: Central\n")
    bad = run_cli("run", SPECS, "--sites", sites, "--site", "chi", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and f"{sites}: site chi: timezone 'Central' is not an IANA time zone name" in bad.stderr


@pytest.mark.parametrize("exact_days", [400, 0], ids=["step functions", "daily means"])
def test_the_report_stack_is_on_utc_instants_and_integrates_to_the_run_hours(chicago, monkeypatch, exact_days):
    """The stack chart's grid starts and ends at the window's instants, and its daily means hold for the 23
    and 25 hours of the clock-change days: each series integrates to the run's hours either way."""
    import numpy as np

    from engine.report import html as report
    from engine.spec.load import load_specs

    monkeypatch.setattr(report, "EXACT_DAYS", exact_days)
    metrics, manifest = load_specs(SPECS).metrics, json.loads((chicago / "out" / "manifest.json").read_text())
    window = tuple(datetime.fromisoformat(manifest["window"][k]) for k in ("start", "end"))
    t, series = report.stack_series(chicago / "out", window, metrics.stack, groups=list(metrics.group_by), tz=ZONE)
    assert t[0] == np.datetime64(datetime(2024, 3, 1)) and t[-1] == np.datetime64(datetime(2024, 12, 1))
    hours = np.diff(t).astype("timedelta64[us]").astype(float) / 3.6e9
    for metric, values in series.items():
        assert (values[:-1] * hours).sum() == pytest.approx(manifest["metrics"][metric]["nodes"], rel=1e-9)


def test_an_empty_window_is_said_in_the_clock_times_typed(tmp_path):
    """Under UTC+14, --start 2023-01-07 is 2023-01-06 10:00 UTC: the refusal named the UTC days."""
    from tests.hardening.support import one_error
    from tests.rawdata import tiny_site, write_raw

    raw = write_raw(tmp_path / "raw", tiny_site())
    window = ["--start", "2023-01-07", "--end", "2023-01-08", "--timezone", "Etc/GMT-14"]
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *window)
    assert one_error(result).startswith("no counted span in the window 2023-01-07 to 2023-01-08 (the data's counted")
