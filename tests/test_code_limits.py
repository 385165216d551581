"""The code limits of the architecture (issue 17), held on every run of the suite: ruff with the project's
configuration (pyproject.toml: no function above cyclomatic complexity 15, no engine function taking more
than three positional arguments) and its formatting."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_holds(command):
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "engine", "simulator", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
