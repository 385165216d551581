"""The sweep and the breakdowns work a batch of whole series at a time: any batch size gives the same files."""

import json

import polars as pl

from engine import usage
from simulator.chameleon import simulate
from tests.conftest import SPECS, run_cli


def test_batches_are_ranges_of_whole_series_in_order():
    ids = pl.DataFrame({"__sid": [0, 0, 1, 2, 2, 2, 3, 5, 5]}, schema={"__sid": pl.UInt32})
    # spans before each series: 0, 2, 3, 6, 7 -> batches of 3 start at series 0, 2 and 3
    assert usage.batches(ids, size=3) == [(0, 1), (2, 2), (3, 5)]
    assert usage.batches(ids, size=1) == [(0, 0), (1, 1), (2, 2), (3, 3), (5, 5)]
    assert usage.batches(ids, size=100) == [(0, 5)]
    assert usage.batches(ids.head(0), size=3) == [(0, 0)]


def test_outputs_in_batches_of_a_few_series_equal_one_batch(tmp_path, monkeypatch):
    simulate(tmp_path / "raw", seed=3, hosts=20, days=40)
    run = ["run", SPECS, "--data", tmp_path / "raw", "--no-report", "--resample", "7d"]
    assert run_cli(*run, "--out", tmp_path / "whole").exit_code == 0

    original, made = usage.batches, []

    def counted(spans, *, size):
        made.append(original(spans, size=size))
        return made[-1]

    monkeypatch.setattr(usage, "BATCH_SPANS", 40)
    monkeypatch.setattr(usage, "batches", counted)
    assert run_cli(*run, "--out", tmp_path / "batched").exit_code == 0
    assert len(made) == 5 and min(len(ranges) for ranges in made) > 1  # sweep, 2 breakdowns, charges and check

    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.parquet"))
    assert "usage.parquet" in map(str, files) and "daily_by_project.parquet" in map(str, files)
    for rel in files:
        whole, batched = pl.read_parquet(tmp_path / "whole" / rel), pl.read_parquet(tmp_path / "batched" / rel)
        assert whole.schema == batched.schema and whole.equals(batched), rel
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("whole", "batched")]
    assert manifests[0]["invariants"] == manifests[1]["invariants"]
    assert manifests[0]["metrics"] == manifests[1]["metrics"]
