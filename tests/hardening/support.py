"""Helpers of the hardening tests: run the CLI on a tiny raw directory, read its outcome or its one error line."""

import json
from pathlib import Path

from tests.conftest import SPECS, run_cli
from tests.rawdata import write_raw

WINDOW = ("--start", "2024-01-01", "--end", "2024-01-31")


def run_ok(tmp_path: Path, tables: dict | None, *args, specs=SPECS, schemas=None, window=WINDOW) -> dict:
    """`engine run --json` on the tables (or on tmp_path/raw as it is, when tables is None); its manifest."""
    raw = tmp_path / "raw" if tables is None else write_raw(tmp_path / "raw", tables, schemas)
    result = run_cli("run", specs, "--data", raw, "--out", tmp_path / "out", "--no-report", "--json", *window, *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def run_error(tmp_path: Path, tables: dict | None, *args, specs=SPECS, schemas=None) -> str:
    """`engine run` on the tables (or on tmp_path/raw as it is, when tables is None); its one error line."""
    raw = tmp_path / "raw" if tables is None else write_raw(tmp_path / "raw", tables, schemas)
    return one_error(run_cli("run", specs, "--data", raw, "--out", tmp_path / "out", "--no-report", *WINDOW, *args))


def one_error(result, code: int = 1) -> str:
    """Exit code 1 (2: a usage mistake), no traceback, exactly one line on stderr: '✗ message'; returns the
    message."""
    assert result.exit_code == code, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("✗ "), lines
    return lines[0][2:]


def entity(manifest: dict, name: str) -> tuple:
    """(input rows, out of scope, accepted, rejected by reason) of one entity."""
    e = manifest["entities"][name]
    return e["input_rows"], e["out_of_scope"], e["accepted"], e["rejected_by_reason"]


def hours(manifest: dict, name: str, *accounts: str) -> tuple:
    h = manifest["entities"][name]["hours"]
    return tuple(h[a] for a in accounts)


def spec_problems(result) -> list[str]:
    """Exit code 1, no traceback, and the '  • problem' lines of a SpecError, each one line."""
    assert result.exit_code == 1 and "Traceback" not in result.output + result.stderr
    return [line.strip()[2:] for line in result.stderr.splitlines() if line.strip().startswith("• ")]
