"""Missing input tables: an optional one degrades its entities with a warning; a missing source table means
the site has no such service (its entities and their children are skipped, with a notice, the others run);
a table an entity requires, missing while its source is there, is an error naming it (an incomplete dump).
"""

import json

import polars as pl

from tests.conftest import SPECS, run_cli
from tests.hardening.support import WINDOW, entity, hours, one_error
from tests.rawdata import tiny_site, write_raw


def run_without(tmp_path, *missing: str):
    tables = {t: rows for t, rows in tiny_site().items() if t not in missing}
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert result.exit_code == 0, result.stderr
    warnings = [line[len("warning: ") :] for line in result.stderr.splitlines() if line.startswith("warning: ")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert warnings == manifest["warnings"]  # the summary shows what the manifest records
    return manifest


def test_a_missing_optional_table_degrades_its_entities_with_a_warning(tmp_path):
    # the capabilities table feeds the host_node_type lookup, which both host entities join as optional
    m = run_without(tmp_path, "blazar.computehost_extra_capabilities")
    why = "cannot be built: table blazar.computehost_extra_capabilities is missing; its columns are null"
    assert (
        f"specs/entities/blazar_host.yaml: entity 'blazar_host': joins[0]: optional table host_node_type {why}"
        in (m["warnings"])
    )
    assert (
        f"specs/entities/nova_host.yaml: entity 'nova_host': joins[0]: optional table hostname_node_type {why}"
        in (m["warnings"])
    )
    # every row is still accounted for as before; only the node types are lost
    assert entity(m, "nova_host") == (6, 0, 3, {"duplicate": 1, "invalid_time_range": 1, "null_start": 1})
    assert entity(m, "blazar_host") == (4, 0, 3, {"missing_fk": 1})
    assert hours(m, "blazar_host", "counted", "clamped_away", "orphaned") == (1152, 24, 48)
    validated = pl.read_parquet(tmp_path / "out" / "validated" / "blazar_host.parquet")
    assert set(validated["node_type"]) == {"unknown"}


def test_a_missing_required_table_is_an_error_naming_it(tmp_path):
    # the allocations are there, the leases they need are not: the dump (or the grants) is incomplete
    tables = {t: rows for t, rows in tiny_site().items() if t != "blazar.leases"}
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert one_error(result) == (
        "specs/entities/allocation.yaml: entity 'allocation': joins[1]: table blazar.leases is missing, but the "
        "entity's source blazar.computehost_allocations is there: the dump or the extraction account's grants "
        "are incomplete"
    )
    assert not (tmp_path / "out").exists()


def test_a_missing_service_skips_its_entities_and_children_with_a_notice(tmp_path):
    # no Blazar allocations at all: the site has no whole-host leases; the rest runs with the tiny site's answers
    tables = {t: rows for t, rows in tiny_site().items() if t != "blazar.computehost_allocations"}
    raw = write_raw(tmp_path / "raw", tables)
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", "--json", *WINDOW)
    assert result.exit_code == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["entities"]["allocation"] == {
        "status": "skipped",
        "reason": "the site has no blazar.computehost_allocations",
    }
    assert m["entities"]["reserved_instance"] == {"status": "skipped", "reason": "its parent allocation was skipped"}
    assert "entity reserved_instance not run: its parent allocation was skipped" in m["notices"]
    assert "report lease_lead_time not made: entity allocation did not run on this site" in m["notices"]
    assert m["warnings"] == []
    assert entity(m, "blazar_host") == (4, 0, 3, {"missing_fk": 1})
    assert entity(m, "ondemand_instance") == (5, 3, 2, {})
    assert {k: m["metrics"][k]["nodes"] for k in ("total", "reservable", "occupied_ondemand")} == {
        "total": 1920.0,
        "reservable": 1152.0,
        "occupied_ondemand": 96.0,
    }
    assert "committed" not in m["metrics"]
