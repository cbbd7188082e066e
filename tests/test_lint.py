"""cnnc's own code, its tests and benchmarks pass the linter the generated modules pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


def test_sources_are_lint_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select",
                             "E,F,W", "--line-length", "100", "cnnc", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    if "No module named ruff" in result.stderr:
        pytest.skip("ruff is not installed")
    assert result.returncode == 0, result.stdout
