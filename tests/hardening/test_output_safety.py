"""Output safety: `--out` (and `--plots`, and `engine simulate --out`) never destroys what is not the engine's.

OUT_DIR is replaced only when absent, empty or an earlier output (its `.engine-output` marker); it may not be,
hold or lie inside the raw data, the specs, the sites or the exclusions file; a full or read-only disk is one
line with the previous output intact; a symlink is followed and nothing is left behind.
"""

import contextlib
import os
import shutil
import subprocess

import polars as pl
import pytest

from tests.conftest import ROOT, SPECS, run_cli
from tests.hardening.support import WINDOW, one_error
from tests.rawdata import tiny_site, write_raw


def snapshot(path) -> dict:
    """Every file below path with its bytes."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def leftovers(*dirs) -> list[str]:
    """Temporary directories of the swap (.NAME.partial-PID, .NAME.old-PID) left in these directories."""
    return [p.name for d in dirs for p in d.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def run(raw, out, *args, specs=SPECS):
    return run_cli("run", specs, "--data", raw, "--out", out, "--no-report", *WINDOW, *args)


@pytest.fixture
def raw(tmp_path):
    return write_raw(tmp_path / "raw", tiny_site())


def test_out_equal_to_the_data_is_refused_and_the_data_untouched(tmp_path, raw):
    before = snapshot(raw)
    message = one_error(run(raw, raw))
    assert message == f"{raw}: refusing to write here: it is the raw data directory {raw}"
    assert snapshot(raw) == before


def test_out_holding_the_data_and_the_specs_is_refused_and_both_untouched(tmp_path, specs_copy):
    raw = write_raw(tmp_path / "raw", tiny_site())
    before, specs_before = snapshot(tmp_path / "raw"), snapshot(specs_copy)
    message = one_error(run(raw, tmp_path, specs=specs_copy))
    assert message == f"{tmp_path}: refusing to write here: it holds the raw data directory {raw}"
    assert snapshot(raw) == before and snapshot(specs_copy) == specs_before
    message = one_error(run(raw, specs_copy / "entities", specs=specs_copy))
    assert (
        message == f"{specs_copy / 'entities'}: refusing to write here: it lies inside the specs directory {specs_copy}"
    )
    assert snapshot(specs_copy) == specs_before


def test_out_inside_a_table_written_as_a_directory_is_refused_beside_the_tables_allowed(tmp_path):
    """Every file of a table's directory is read as a part: an output there broke every later run of the data."""
    raw = write_raw(tmp_path / "raw", tiny_site())
    table = raw / "blazar.leases.parquet"
    leases = pl.read_parquet(table)
    table.unlink()
    table.mkdir()
    leases.write_parquet(table / "part-0.parquet")
    message = one_error(run(raw, table / "out"))
    assert message == f"{table / 'out'}: refusing to write here: it lies inside the raw data directory {raw}"
    assert run(raw, raw / "runs" / "out").exit_code == 0  # beside the tables: never read as one


def test_out_holding_the_sites_or_exclusions_file_is_refused(tmp_path, raw):
    etc = tmp_path / "etc"
    etc.mkdir()
    shutil.copy(ROOT / "etc" / "exclusions.yaml", etc / "exclusions.yaml")
    (etc / "sites.yaml").write_text("sites:\n  tiny: {name: tiny, data: raw}\n")
    message = one_error(run(raw, etc, "--exclusions", etc / "exclusions.yaml"))
    assert message == f"{etc}: refusing to write here: it holds the exclusions file {etc / 'exclusions.yaml'}"
    result = run_cli("run", SPECS, "--sites", etc / "sites.yaml", "--site", "tiny", "--out", etc, *WINDOW)
    assert one_error(result) == f"{etc}: refusing to write here: it holds the sites file {etc / 'sites.yaml'}"
    assert sorted(p.name for p in etc.iterdir()) == ["exclusions.yaml", "sites.yaml"]


def test_a_foreign_directory_is_refused_an_empty_one_or_an_earlier_output_replaced(tmp_path, raw):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    message = one_error(run(raw, foreign))
    assert message.startswith(f"{foreign}: refusing to replace it: the directory is not empty and not an output")
    assert snapshot(foreign) == {"thesis.tex": b"years of work"}
    (tmp_path / "empty").mkdir()
    assert run(raw, tmp_path / "empty").exit_code == 0
    assert (tmp_path / "empty" / ".engine-output").is_file() and (tmp_path / "empty" / "daily.parquet").is_file()
    (tmp_path / "empty" / "daily.parquet").unlink()  # what the engine wrote may go
    assert run(raw, tmp_path / "empty").exit_code == 0  # an earlier output: replaced whole
    assert (tmp_path / "empty" / "daily.parquet").is_file()


def test_an_earlier_output_holding_files_the_engine_did_not_write_is_refused(tmp_path, raw):
    """Notes an operator keeps beside the results, a CSV exported into OUT: the next run used to delete them."""
    out = tmp_path / "out"
    assert run(raw, out).exit_code == 0
    (out / "notes.txt").write_text("what the auditor asked")
    (out / "spans" / "mine.csv").write_text("a,b\n")
    (out / "link").symlink_to(tmp_path)
    before = snapshot(out)
    message = one_error(run(raw, out))
    assert message == (
        f"{out}: refusing to replace it: it holds link, notes.txt, spans/mine.csv, which the engine did not write "
        "there; move them out, or choose another --out"
    )
    assert snapshot(out) == before and not leftovers(tmp_path)
    for name in ("notes.txt", "spans/mine.csv", "link"):
        (out / name).unlink()
    assert run(raw, out).exit_code == 0
    (out / ".engine-output").write_text('{"kind": "run"}\n')  # a marker of 0.2, listing no files
    (out / "stale.txt").write_text("x")
    assert run(raw, out).exit_code == 0 and not (out / "stale.txt").exists()


def test_a_simulated_site_is_not_a_run_output(tmp_path, raw):
    assert run_cli("simulate", "--out", tmp_path / "sim", "hosts=2", "days=2").exit_code == 0
    message = one_error(run(raw, tmp_path / "sim"))
    assert "not empty and an output of `engine simulate` (no .engine-output file of `engine run`)" in message
    assert (tmp_path / "sim" / "nova.instances.parquet").is_file()


def test_a_symlinked_out_replaces_its_target_and_leaves_nothing_behind(tmp_path, raw):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for _ in range(2):
        assert run(raw, tmp_path / "link").exit_code == 0
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "daily.parquet").is_file()
    assert leftovers(tmp_path) == []
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    message = one_error(run(raw, tmp_path / "dangling"))
    assert (
        message
        == f"{tmp_path / 'dangling'}: the output path is a symlink to {tmp_path / 'nowhere'}, which does not exist"
    )


def test_plots_inside_out_survive_the_swap_and_elsewhere_follow_the_same_rules(tmp_path, raw):
    out = tmp_path / "out"
    result = run_cli("run", SPECS, "--data", raw, "--out", out, "--plots", out / "plots", *WINDOW)
    assert result.exit_code == 0, result.stderr
    assert (out / "plots" / "stack.png").is_file()
    (tmp_path / "slides").mkdir()
    (tmp_path / "slides" / "talk.key").write_text("slides")
    result = run_cli("run", SPECS, "--data", raw, "--out", out, "--plots", tmp_path / "slides", *WINDOW)
    assert one_error(result) == (  # it spoke of --out and of a command `engine plots`
        f"{tmp_path / 'slides'}: refusing to replace it: the directory is not empty and not an output of the engine "
        "(no .engine-output file of `engine run --plots`); choose another --plots, or empty it"
    )
    assert snapshot(tmp_path / "slides") == {"talk.key": b"slides"}
    assert leftovers(tmp_path) == []  # before: the run's own .out.partial-PID, left by a refused --plots
    result = run_cli("run", SPECS, "--data", raw, "--out", out, "--plots", tmp_path, *WINDOW)
    assert one_error(result).endswith(f"it holds the raw data directory {raw}")
    assert leftovers(tmp_path) == []
    result = run_cli("run", SPECS, "--data", raw, "--out", out, "--plots", tmp_path / "png", *WINDOW)
    assert result.exit_code == 0 and (tmp_path / "png" / "stack.png").is_file() and leftovers(tmp_path) == []


@contextlib.contextmanager
def tmpfs(path, size: str, *options: str):
    """A small filesystem of our own (needs the mount privilege, which CI's root has)."""
    path.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (no privilege)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_is_one_line_and_the_previous_output_stays(tmp_path, raw):
    assert run(raw, tmp_path / "probe").exit_code == 0
    probe = snapshot(tmp_path / "probe")
    room = sum(4096 * (1 + len(b) // 4096) for b in probe.values()) * 3 // 2  # one output fits, two do not
    with tmpfs(tmp_path / "disk", str(room)) as disk:
        assert run(raw, disk / "out").exit_code == 0
        before = snapshot(disk / "out")
        message = one_error(run(raw, disk / "out"))  # the new output is written beside the old one: no room
        assert message.startswith(f"{disk / 'out'}: cannot write ") and "No space left on device" in message
        assert snapshot(disk / "out") == before and leftovers(disk) == []


def test_a_read_only_disk_is_one_line_and_the_previous_output_stays(tmp_path, raw):
    with tmpfs(tmp_path / "disk", "10m") as disk:
        assert run(raw, disk / "out").exit_code == 0
        before = snapshot(disk / "out")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert (
            one_error(run(raw, disk / "out"))
            == f"{disk / 'out'}: cannot write the output directory (Read-only file system)"
        )
        assert snapshot(disk / "out") == before


def test_simulate_never_overwrites_a_real_raw_directory(tmp_path, raw):
    before = snapshot(raw)
    result = run_cli("simulate", "--out", raw, "hosts=2", "days=2")
    assert "refusing to replace it: the directory is not empty and not an output of the engine" in one_error(result)
    assert snapshot(raw) == before
    for seed in ("1", "2"):  # an earlier simulation is replaced
        assert run_cli("simulate", "--out", tmp_path / "sim", "hosts=2", "days=2", f"seed={seed}").exit_code == 0
    assert '"seed": 2' in (tmp_path / "sim" / "simulation" / "simulation.json").read_text()
    assert leftovers(tmp_path) == []


def test_out_that_is_or_holds_the_current_directory_is_refused(tmp_path, raw, monkeypatch):
    """`--out .` in an earlier output replaced it: the shell was left in a deleted directory, `ls` showing nothing."""
    out = tmp_path / "runs" / "out"
    assert run(raw, out).exit_code == 0
    before = snapshot(out)
    monkeypatch.chdir(out)
    assert one_error(run(raw, ".")) == f".: refusing to write here: it is the current directory {out}"
    assert one_error(run(raw, "..")) == f"..: refusing to write here: it holds the current directory {out}"
    assert snapshot(out) == before


def test_a_name_too_long_for_its_temporary_is_refused_naming_the_limit(tmp_path, raw):
    """A 250-byte OUT (a valid name) ended in "(File name too long)", and an export in a message naming
    `.bbb….csv.partial-17851`, a file the user never gave."""
    limit = 255 - len(f"..partial-{os.getpid()}")
    assert run(raw, tmp_path / "out").exit_code == 0
    for option, name in (("--out", "a" * 250), ("--csv", "b" * 250 + ".csv")):
        target = tmp_path / name
        command = run(raw, target) if option == "--out" else run_cli("export", tmp_path / "out", "--csv", target)
        assert one_error(command) == (
            f"{target}: a name of {len(name)} bytes, at most {limit} (the engine writes it first as "
            ".NAME.partial-PID beside it)"
        )
    assert run(raw, tmp_path / ("a" * limit)).exit_code == 0
