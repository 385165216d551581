"""Re-runs: the same input and specs give the same bytes; a run killed mid-way leaves the last complete output.

A run that fails with an error leaves the previous output too: tests/e2e/test_run_tiny.py
(test_a_failed_run_leaves_the_previous_output_untouched).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import polars as pl

from engine.io.output import OutputDir
from tests.conftest import ROOT, SPECS, run_cli
from tests.rawdata import tiny_site, write_raw

WINDOW = ("--start", "2024-01-01", "--end", "2024-01-31", "--resample", "7d")
ARGS = (*WINDOW, "--exclusions", ROOT / "etc" / "exclusions.yaml")


def files(out) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


PROVENANCE = ("command", "generated_at", "timings")  # what tells one run from another, kept apart


def without_provenance(page: bytes) -> bytes:
    """report.html without the two provenance rows that name the command and the time of the run."""
    return re.sub(rb"<tr class=\"\"><td>(command|generated at)</td><td>[^<]*</td></tr>", b"", page)


def test_the_same_input_gives_byte_identical_outputs(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    for name in ("first", "second"):
        assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / name, *ARGS).exit_code == 0
        time.sleep(1.1)  # a wall-clock value at second resolution would differ between the runs
    first, second = files(tmp_path / "first"), files(tmp_path / "second")
    assert set(first) == set(second) and {"report.html", "daily.parquet", "spans/allocation.parquet"} <= set(first)
    assert [f for f in first if first[f] != second[f]] == ["manifest.json", "report.html"]
    assert without_provenance(first["report.html"]) == without_provenance(second["report.html"])
    assert without_provenance(first["report.html"]) != first["report.html"]  # the rows were there
    manifests = [json.loads(first["manifest.json"]), json.loads(second["manifest.json"])]
    assert [k for k in manifests[0] if manifests[0][k] != manifests[1][k]] == list(PROVENANCE)
    # re-running into the same directory replaces it with the same bytes
    assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "first", *ARGS).exit_code == 0
    again = files(tmp_path / "first")
    data = [f for f in first if f not in ("manifest.json", "report.html")]
    assert {f: again[f] for f in data} == {f: first[f] for f in data}
    assert without_provenance(again["report.html"]) == without_provenance(first["report.html"])


def test_no_wall_clock_value_inside_the_data_files(tmp_path):
    raw = write_raw(tmp_path / "raw", tiny_site())
    assert run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *ARGS).exit_code == 0
    times = []
    for path in (tmp_path / "out").rglob("*.parquet"):
        df = pl.read_parquet(path)
        times += [
            df[c].cast(pl.Datetime("us")).max() for c, t in df.schema.items() if t in (pl.Date, pl.Datetime("us"))
        ]
    # every time in every file comes from the data: the latest is h5's deletion at the window end, 2024-01-31
    assert max(t for t in times if t is not None) == datetime(2024, 1, 31)


KILLED_RUN = """
import sys, time, pathlib
import engine.plan.spans, engine.pipeline
from engine.cli import main

def stuck(*args, **kwargs):  # the spans stage of the first entity: signal, then wait to be killed
    pathlib.Path(sys.argv[1]).touch()
    time.sleep(120)

engine.pipeline.build_spans = engine.plan.spans.build_spans = stuck
main(sys.argv[2:])
"""


def stopped_in_spans(tmp_path, how: signal.Signals) -> tuple[subprocess.Popen, Path, dict]:
    """A run into tmp_path/out over a complete earlier one, sent `how` in the spans stage: (the process, OUT_DIR,
    the earlier output's files)."""
    raw = write_raw(tmp_path / "raw", tiny_site())
    out, marker = tmp_path / "out", tmp_path / "in-spans"
    assert run_cli("run", SPECS, "--data", raw, "--out", out, "--no-report", *ARGS).exit_code == 0
    before = files(out)
    args = [sys.executable, "-c", KILLED_RUN, marker, "run", SPECS, "--data", raw, "--out", out, "--no-report", *ARGS]
    proc = subprocess.Popen(list(map(str, args)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached the spans stage"
        os.kill(proc.pid, how)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    return proc, out, before


def test_a_run_killed_in_the_spans_stage_leaves_the_previous_output(tmp_path):
    proc, out, before = stopped_in_spans(tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert files(out) == before  # every byte of the last complete run
    partial = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert partial == [f".out.partial-{proc.pid}"]  # what the killed run had begun, beside OUT_DIR
    # the next run clears it and replaces the output as usual
    raw = tmp_path / "raw"
    assert run_cli("run", SPECS, "--data", raw, "--out", out, "--no-report", *ARGS).exit_code == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert {f: b for f, b in files(out).items() if f != "manifest.json"} == {
        f: b for f, b in before.items() if f != "manifest.json"
    }


def test_a_run_terminated_in_the_spans_stage_removes_what_it_began(tmp_path):
    # SIGTERM (kill, a scheduler's stop) ends the run as Ctrl-C does: exit 128 + 15, nothing left behind
    proc, out, before = stopped_in_spans(tmp_path, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM
    assert files(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_run_killed_mid_swap_gets_its_previous_output_back(tmp_path):
    # commit() renames OUT_DIR to .out.old-PID, then the finished run to OUT_DIR: killed in between, OUT_DIR is gone
    pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    (tmp_path / f".out.old-{pid}").mkdir()
    (tmp_path / f".out.old-{pid}" / "manifest.json").write_text("previous")
    (tmp_path / f".out.partial-{pid}").mkdir()
    OutputDir(tmp_path / "out").abandon()  # what the next run does first, whatever happens to it later
    assert (tmp_path / "out" / "manifest.json").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
