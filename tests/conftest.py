"""Shared test helpers: a scratch copy of the bundled specs and a CLI runner that shows tracebacks."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture
def specs_copy(tmp_path) -> Path:
    """A writable copy of specs/ to break or extend in a test."""
    dest = tmp_path / "specs"
    shutil.copytree(SPECS, dest)
    return dest


def run_cli(*args: str):
    """Run `engine ARGS` in-process; returns the click Result (exit_code, stdout, stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result
