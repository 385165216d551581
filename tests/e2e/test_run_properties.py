"""Random raw hosts through the whole pipeline: every row and every hour is accounted for."""

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.pipeline import RunConfig, run
from tests.conftest import SPECS
from tests.rawdata import day, write_raw

times = st.one_of(st.none(), st.integers(0, 30).map(day))
rows = st.lists(st.tuples(st.sampled_from(["h1", "h2", "h3", None]), times, times), max_size=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows, rows)
def test_rows_and_hours_are_conserved(tmp_path_factory, nova_rows, blazar_rows):
    base = tmp_path_factory.mktemp("prop")
    stamp = pl.Datetime("us")
    tables = {
        "nova.compute_nodes": [
            {
                "id": i,
                "hypervisor_hostname": h,
                "created_at": s,
                "deleted_at": e,
                "updated_at": None,
                "vcpus": 8,
                "memory_mb": 1024,
                "local_gb": 10,
                "hypervisor_type": "ironic",
            }
            for i, (h, s, e) in enumerate(nova_rows)
        ],
        "blazar.computehosts": [
            {
                "id": 100 + i,
                "hypervisor_hostname": h,
                "created_at": s,
                "deleted_at": e,
                "updated_at": None,
                "vcpus": 8,
                "memory_mb": 1024,
                "local_gb": 10,
            }
            for i, (h, s, e) in enumerate(blazar_rows)
        ],
        "blazar.computehost_extra_capabilities": [],
    }
    schemas = {
        "nova.compute_nodes": {
            "id": pl.Int64,
            "hypervisor_hostname": pl.String,
            "created_at": stamp,
            "deleted_at": stamp,
            "updated_at": stamp,
            "vcpus": pl.Int64,
            "memory_mb": pl.Int64,
            "local_gb": pl.Int64,
            "hypervisor_type": pl.String,
        },
        "blazar.computehosts": {
            "id": pl.Int64,
            "hypervisor_hostname": pl.String,
            "created_at": stamp,
            "deleted_at": stamp,
            "updated_at": stamp,
            "vcpus": pl.Int64,
            "memory_mb": pl.Int64,
            "local_gb": pl.Int64,
        },
        "blazar.computehost_extra_capabilities": {
            "id": pl.Int64,
            "computehost_id": pl.Int64,
            "capability_name": pl.String,
            "capability_value": pl.String,
            "created_at": stamp,
        },
    }
    raw = write_raw(base / "raw", tables, schemas)
    try:
        m = run(RunConfig(specs=str(SPECS), data=str(raw), out=str(base / "out"), start=day(0), end=day(31)))
    except EngineError as exc:  # nothing counts: no false success, and the line says what became of the rows
        assert str(exc).startswith("no counted span in the window 2024-01-01 to 2024-02-01")
        assert not (base / "out").exists()
        return
    for name in ("nova_host", "blazar_host"):
        e = m["entities"][name]
        assert e["input_rows"] == e["accepted"] + e["rejected"] + e["inactive"] + e["out_of_scope"]
        h = e["hours"]
        parts = h["counted"] + h["clamped_away"] + h["orphaned"] + h["rejected"] + h["inactive"]
        assert abs(h["input"] - parts) < 1e-6
        assert h["clamped_by_duplicates"] >= -1e-9 and h["clamped_by_parent"] >= -1e-9
    assert [i for i in m["invariants"] if i["status"] != "pass"] == []
