"""Shared test configuration.

`--long` runs the long differential, fuzz and benchmark-sized tests (marked `long`); CI
runs a seeded, fast subset without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long tests (differential sweeps, long fuzzing)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long test: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES
