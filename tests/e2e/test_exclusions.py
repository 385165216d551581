"""Manual exclusions on the hand-made tiny site: rejected as `excluded`, stale entries reported."""

import json

import polars as pl

from tests.conftest import SPECS, run_cli
from tests.rawdata import tiny_site, write_raw

EXCLUSIONS = """
exclusions:
  - entity: nova_host
    key: 6
    reason: lab host, never in production
    added_by: ops
    added_on: 2024-03-01
  - entity: allocation
    key: [A1]
    valid_from: 2024-01-11      # A1 ran d2-d5: it never reaches this, so the entry is stale
    reason: test lease
    added_by: ops
    added_on: 2024-03-01
  - entity: blazar_host
    key: 99
    reason: gone
    added_by: ops
    added_on: 2024-03-01
"""


def run_with(tmp_path, text, *options):
    raw = write_raw(tmp_path / "raw", tiny_site())
    (tmp_path / "exclusions.yaml").write_text(text)
    window = ("--start", "2024-01-01", "--end", "2024-01-31")
    excluded = ("--exclusions", tmp_path / "exclusions.yaml")
    return run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", *excluded, *window, *options)


def test_excluded_rows_are_rejections_with_the_operators_reason(tmp_path):
    result = run_with(tmp_path, EXCLUSIONS)
    assert result.exit_code == 0, result.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["entities"]["nova_host"]["rejected_by_reason"]["excluded"] == 1
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "nova_host.parquet").filter(pl.col("entity_id") == "6")
    assert rejected["rejection_detail"].to_list() == ["excluded by ops on 2024-03-01: lab host, never in production"]
    # h5 no longer exists for its children: its on-demand instances have no parent now
    assert m["entities"]["ondemand_instance"]["rejected_by_reason"] == {"missing_fk": 2}
    assert m["entities"]["nova_host"]["input_rows"] == 6  # INV-3 still holds with the exclusion counted
    stale = {(s["entity"], tuple(s["entity_id"])) for s in m["exclusions"]["stale"]}
    assert stale == {("allocation", ("A1",)), ("blazar_host", ("99",))}
    assert any(w.startswith("stale exclusion: blazar_host 99 matched no row") for w in m["warnings"])


def test_projected_snapshots_honour_the_exclusions(tmp_path):
    """The as-of series is the same pipeline under another lens: the excluded host is gone from every snapshot,
    so the snapshot taken at the run's own as-of time is the run itself (a bug once: snapshots ignored the
    exclusions)."""
    result = run_with(tmp_path, EXCLUSIONS, "--lens", "projected", "--as-of", "2024-01-31", "--as-of-series", "1d")
    assert result.exit_code == 0, result.stderr
    daily = pl.read_parquet(tmp_path / "out" / "daily.parquet")
    series = pl.read_parquet(tmp_path / "out" / "as_of_daily.parquet")
    last = series.filter(pl.col("as_of") == pl.datetime(2024, 1, 31)).drop("as_of")
    assert last.sort(daily.columns).equals(daily.sort(daily.columns))
    plain = run_with(tmp_path, "exclusions: []\n", "--lens", "projected", "--as-of", "2024-01-31")
    assert plain.exit_code == 0, plain.stderr
    total = pl.col("metric") == "total"
    with_host = pl.read_parquet(tmp_path / "out" / "daily.parquet").filter(total)["hours"].sum()
    assert daily.filter(total)["hours"].sum() < with_host  # the exclusion took a host's hours away


def test_a_bad_exclusions_file_is_a_clear_error(tmp_path):
    bad = EXCLUSIONS.replace("entity: nova_host", "entity: nova_hots").replace(
        "added_on: 2024-03-01\n  - entity: allocation", "added_on: 1/3/2024\n  - entity: allocation"
    )
    result = run_with(tmp_path, bad)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "exclusions[0].added_on: '1/3/2024' is not valid" in result.stderr
    result = run_with(tmp_path, EXCLUSIONS.replace("entity: nova_host", "entity: nova_hots"))
    assert "exclusions[0].entity: unknown entity 'nova_hots' (did you mean 'nova_host'?)" in result.stderr
    twice = EXCLUSIONS.replace("key: 99", "key: 6").replace("entity: blazar_host", "entity: nova_host")
    assert "nova_host key 6 is excluded twice" in run_with(tmp_path, twice).stderr
    backwards = EXCLUSIONS.replace("valid_from: 2024-01-11", "valid_from: 2024-01-11\n    valid_to: 2024-01-10")
    assert "exclusions[1]: valid_to 2024-01-10 00:00:00 is not after valid_from 2024-01-11 00:00:00" in (
        run_with(tmp_path, backwards).stderr
    )
    null = run_with(tmp_path, EXCLUSIONS.replace("key: [A1]", "key: [A1, null]")).stderr
    assert "exclusions[1].key[1]: expected text or an integer, got null" in null  # it said "got a list"


def test_an_entry_with_a_site_applies_at_that_site_only(tmp_path):
    """Database ids repeat across sites (two Novas both have a host 6): before, an entry meant for one site
    took the same key away at every site of the run, and `site` was an unknown field."""
    for site in ("east", "west"):
        write_raw(tmp_path / site, tiny_site())
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sites.yaml").write_text(
        "sites:\n  east: {name: East, data: east}\n  west: {name: West, data: west}\n"
    )
    entry = "exclusions:\n  - {entity: nova_host, key: 6, site: SITE, reason: r, added_by: ops, added_on: 2024-03-01}\n"
    (tmp_path / "exclusions.yaml").write_text(entry.replace("SITE", "east"))
    args = ("--sites", tmp_path / "etc" / "sites.yaml", "--site", "east", "--site", "west", "--no-report")
    args += ("--exclusions", tmp_path / "exclusions.yaml", "--start", "2024-01-01", "--end", "2024-01-31")
    result = run_cli("run", SPECS, *args, "--out", tmp_path / "out", "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    east, west = (json.loads((tmp_path / "out" / s / "manifest.json").read_text()) for s in ("east", "west"))
    assert east["entities"]["nova_host"]["rejected_by_reason"].get("excluded") == 1
    assert "excluded" not in west["entities"]["nova_host"]["rejected_by_reason"]
    assert west["exclusions"]["entries"] == 0 and west["exclusions"]["stale"] == []  # not stale: not its site
    (tmp_path / "exclusions.yaml").write_text(entry.replace("SITE", "eats"))
    result = run_cli("run", SPECS, *args, "--out", tmp_path / "out2", "--jobs", "1")
    assert result.exit_code == 1
    assert "exclusions[0].site: unknown site 'eats' (did you mean 'east'?); known: east, west" in result.output


def test_without_a_sites_file_an_entry_of_another_site_is_a_warning_not_silence(tmp_path):
    """A --data run is named by its raw directory: an entry for `east` is not applied to data/east-2024-05,
    which may be east itself, so the run says so (it said nothing before)."""
    entry = "exclusions:\n  - {entity: nova_host, key: 6, site: east, reason: r, added_by: ops, added_on: 2024-03-01}\n"
    result = run_with(tmp_path, entry, "--json", "--no-report")
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    assert "excluded" not in m["entities"]["nova_host"]["rejected_by_reason"]
    path = tmp_path / "exclusions.yaml"
    assert (
        f"{path}: exclusions[0] is for site 'east', not this run's 'raw' (the raw directory's name): not applied"
        in (m["warnings"])
    )


def test_a_stale_entry_of_many_keys_is_one_short_warning(tmp_path):
    keys = ", ".join(f"X{i}" for i in range(50_000))
    entry = f"exclusions:\n  - {{entity: allocation, key: [{keys}], reason: r, added_by: ops, added_on: 2024-03-01}}\n"
    result = run_with(tmp_path, entry, "--json", "--no-report")
    assert result.exit_code == 0, result.stderr
    (warning,) = [w for w in json.loads(result.stdout)["warnings"] if w.startswith("stale exclusion")]
    assert warning == (  # one line of 339 kB before
        "stale exclusion: allocation X0, X1, X2, X3, X4, X5, X6, X7, X8, X9 and 49,990 more matched no row "
        "(excluded by ops on 2024-03-01: r)"
    )


def test_an_entry_of_an_entity_that_did_not_run_is_a_notice(tmp_path):
    """An edge device's entry on a bare-metal site was neither applied nor stale: nothing said it."""
    entry = "exclusions:\n  - {entity: device, key: [d1, d2], reason: r, added_by: ops, added_on: 2024-03-01}\n"
    result = run_with(tmp_path, entry, "--json", "--no-report")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert "exclusions of entity device not applied: it did not run on this site (2 key(s))" in manifest["notices"]
    assert manifest["exclusions"]["stale"] == []
