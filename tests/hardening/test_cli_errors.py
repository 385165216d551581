"""Command-line mistakes: exit code 1 and one line naming what is wrong, never a traceback.

Unknown sites are tested in tests/e2e/test_sites.py (`--site tac` suggests 'tacc').
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SPECS, run_cli
from tests.hardening.support import WINDOW, one_error
from tests.rawdata import tiny_site, write_raw


def run(tmp_path, *args):
    raw = write_raw(tmp_path / "raw", tiny_site())
    return run_cli("run", SPECS, "--data", raw, "--no-report", *args)


def test_output_dir_is_an_existing_file(tmp_path):
    (tmp_path / "out").write_text("a file")
    message = one_error(run(tmp_path, "--out", tmp_path / "out", *WINDOW))
    assert message == f"{tmp_path / 'out'}: output path exists and is not a directory"
    assert (tmp_path / "out").read_text() == "a file"


def test_output_dir_under_a_file(tmp_path):
    (tmp_path / "file").write_text("a file")
    message = one_error(run(tmp_path, "--out", tmp_path / "file" / "out", *WINDOW))
    assert message == f"{tmp_path / 'file' / 'out'}: cannot write the output directory (a parent path is a file)"


def test_output_dir_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    target, reason = locked / "out", "Permission denied"
    if os.geteuid() == 0:  # root writes through permissions; procfs refuses new directories even to root
        target, reason = Path("/proc/engine-hardening-out"), "No such file or directory"
    message = one_error(run(tmp_path, "--out", target, *WINDOW))
    assert message == f"{target}: cannot write the output directory ({reason})"
    assert list(locked.iterdir()) == []


def test_window_end_before_or_at_start(tmp_path):
    for end in ("2024-01-01", "2024-01-31"):
        result = run(tmp_path, "--out", tmp_path / "out", "--start", "2024-01-31", "--end", end)
        assert one_error(result) == f"--end {end} is not after --start 2024-01-31"
    assert not (tmp_path / "out").exists()


def test_missing_data_dir_sites_file_and_projected_lens_without_as_of(tmp_path):
    result = run_cli("run", SPECS, "--data", tmp_path / "nope", "--out", tmp_path / "out")
    assert one_error(result) == f"{tmp_path / 'nope'}: raw data directory does not exist"
    result = run_cli("run", SPECS, "--sites", tmp_path / "sites.yaml", "--site", "tacc", "--out", tmp_path / "out")
    assert one_error(result) == f"{tmp_path / 'sites.yaml'}: sites file does not exist"
    result = run(tmp_path, "--out", tmp_path / "out", "--lens", "projected")
    assert one_error(result) == "--lens projected needs --as-of T, and --as-of needs --lens projected"


def test_why_with_an_unknown_group_column(tmp_path):
    assert run(tmp_path, "--out", tmp_path / "out", *WINDOW).exit_code == 0
    result = run_cli("why", tmp_path / "out", "--metric", "total", "--date", "2024-01-02", "--where", "node_typ=gpu")
    assert (
        one_error(result)
        == "--where: 'node_typ' is not a group or breakdown column (did you mean 'node_type'?); known: site, node_type, project_id, user_id"
    )


def test_simulate_into_a_file(tmp_path):
    (tmp_path / "file").write_text("a file")
    result = run_cli("simulate", "--out", tmp_path / "file", "hosts=2", "days=2")
    assert one_error(result) == f"{tmp_path / 'file'}: output path exists and is not a directory"


def test_a_deleted_current_directory_is_said_as_such(tmp_path):
    """Before: `✗ : No such file or directory` for a run, `spec path does not exist` for validate."""
    gone = tmp_path / "gone"
    for command in ("validate ../specs", "run ../specs --data ../raw"):
        script = f'mkdir {gone} && cd {gone} && rmdir {gone} && exec "$0" -m engine {command}'
        proc = subprocess.run(["sh", "-c", script, sys.executable], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines() == [
            "✗ the current directory no longer exists (deleted since the shell entered it); cd to one that does"
        ]


def test_the_installed_command_prints_one_line_and_exits_1(tmp_path):
    (tmp_path / "out").write_text("a file")
    raw = write_raw(tmp_path / "raw", tiny_site())
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(SPECS), "--data", str(raw), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [f"✗ {tmp_path / 'out'}: output path exists and is not a directory"]


def test_an_empty_or_non_utf8_path_is_one_line(tmp_path):
    """An unset $OUT is no path (`--out ''` was the current directory, `--sites ''` ignored); Polars opens no
    name that is not UTF-8 (it took one for a file object: a TypeError traceback, or "no .read() method")."""
    assert one_error(run(tmp_path, "--out", "", *WINDOW), 2) == "engine run: Invalid value for '--out': an empty path"
    assert (
        one_error(run_cli("run", SPECS, "--sites", ""), 2) == "engine run: Invalid value for '--sites': an empty path"
    )
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/o\xff")
    message = one_error(run(tmp_path, "--out", odd, *WINDOW), 2)
    assert message == f"engine run: Invalid value for '--out': {tmp_path}/o\\udcff is not UTF-8 text; rename it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    raw = tmp_path / "raw"
    (raw / "blazar.leases.parquet").rename(tmp_path / "leases")
    (raw / "blazar.leases.parquet").mkdir()
    (tmp_path / "leases").rename(os.fsdecode(os.fsencode(raw / "blazar.leases.parquet") + b"/p\xff"))
    result = run_cli("run", SPECS, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW)
    assert one_error(result) == (
        f"{raw}/blazar.leases.parquet/p\\udcff: a file name that is not UTF-8 text (Polars opens no other); rename it"
    )


def test_a_full_or_ascii_standard_output_is_one_line_or_escaped(tmp_path):
    """`> /dev/full` said `✗ : No space left on device`; an ASCII stdout (PYTHONIOENCODING=ascii) ended in a
    UnicodeEncodeError traceback at the first '—'."""
    command = [sys.executable, "-m", "engine", "explain", str(SPECS)]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["✗ the standard output: No space left on device"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    proc = subprocess.run(command, capture_output=True, cwd=ROOT, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert proc.stdout.isascii() and b"12 entities" in proc.stdout and b"\\u2014" in proc.stdout


def test_data_given_as_the_current_directory_names_the_site_after_it(tmp_path, monkeypatch):
    """`--data .` made the site '' in every output and the report."""
    raw = write_raw(tmp_path / "chi", tiny_site())
    monkeypatch.chdir(raw)
    result = run_cli("run", SPECS, "--data", ".", "--out", tmp_path / "out", "--no-report", "--json", *WINDOW)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["site"] == "chi"


def test_a_directory_given_for_a_file_is_said_as_such(tmp_path):
    """`--exclusions /` said the output "lies inside the exclusions file /"; `export --csv newdir/` wrote a file
    named newdir, and `--csv out.csv/` replaced out.csv."""
    result = run(tmp_path, "--out", tmp_path / "out", "--exclusions", "/", *WINDOW)
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "✗ 1 problem:",
        "  • /: cannot read (Is a directory)",
    ]
    assert not (tmp_path / "out").exists()
    result = run_cli("export", tmp_path, "--csv", f"{tmp_path}/newdir/")
    assert (
        one_error(result, 2) == f"engine export: Invalid value for '--csv': {tmp_path}/newdir/ ends in '/': name a file"
    )
