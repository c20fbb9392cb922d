"""The linter the project is configured for (pyproject.toml [tool.ruff]) passes on the whole repository."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.is_file(), f"{ruff}: ruff is not installed in this environment (pip install -r requirements.txt)"
    result = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
