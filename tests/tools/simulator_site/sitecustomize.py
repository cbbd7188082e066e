"""Imported by Python at start-up when this folder is on PYTHONPATH (a test's subprocess
that runs the CUDA target in Numba's simulator): tests/tools/simulator.py's
quicker_simulator, when the simulator is on."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "cnnc_tests_simulator", Path(__file__).resolve().parent.parent / "simulator.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_module.quicker_simulator()
