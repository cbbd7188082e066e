"""The vector width of the machine code Numba generates for cnnc's kernels.

LLVM tunes for Intel's AVX-512 CPUs since Skylake-X with 'prefer-256-bit': its
vectorizer then uses 256-bit registers although 512-bit ones are there (the width is a
tuning choice, not a feature the CPU lacks). cnnc's kernels are loops the vectorizer
widens, and with 512-bit vectors mnist_cnn's inference ran 86k images/s at batch 256
against 70k (2 threads, Intel Xeon with AVX-512, measured in one session). So before
Numba compiles anything, a host with AVX-512 gets the host's features plus
'-prefer-256-bit' -- unless NUMBA_CPU_FEATURES or NUMBA_CPU_NAME says otherwise, or
Numba's CPU code generator already started (it reads the features once).

The features are part of the key of Numba's cache, so every process that compiles or
loads cnnc's kernels (build.py's workers included) calls `widen()` first. A standalone
generated module compiles with Numba's defaults unless its user sets
NUMBA_CPU_FEATURES (its header says so).
"""

from __future__ import annotations

import os


def wide_features() -> str | None:
    """The host's features with 512-bit vectors preferred, or None (no AVX-512)."""
    import llvmlite.binding as ll
    features = ll.get_host_cpu_features()
    if not features.get("avx512f"):
        return None
    return features.flatten() + ",-prefer-256-bit"


def vector_bits() -> int:
    """The width of the vectors the kernels will run with here: 512 where `widen()` makes
    Numba use them (or NUMBA_CPU_FEATURES asks for AVX-512 without 'prefer-256-bit'),
    else 256. The CPU code generator sizes its GEMM register tiles by it."""
    features = os.environ.get("NUMBA_CPU_FEATURES")
    if features:
        return 512 if "+avx512f" in features and "-prefer-256-bit" in features else 256
    if os.environ.get("NUMBA_CPU_NAME"):
        return 256
    return 512 if wide_features() is not None else 256


def widen() -> bool:
    """Let Numba's code use 512-bit vectors where the host has AVX-512; True if set."""
    if os.environ.get("NUMBA_CPU_FEATURES") or os.environ.get("NUMBA_CPU_NAME"):
        return False
    from numba.core import config, registry
    if config.CPU_FEATURES is not None or \
            "_toplevel_target_context" in vars(registry.cpu_target):
        return False                       # chosen already, or code generated already
    features = wide_features()
    if features is None:
        return False
    config.CPU_FEATURES = features
    return True


# Vector registers a GEMM's register tile of accumulators takes: 12 of the 16 (AVX2) or
# 32 (AVX-512) leave room for the panel's row and the broadcasts. By vector width, the
# dense tile is then 6 x 32 float32 (12 zmm) or 3 x 32 (12 ymm): measured on a 2-core AMD
# EPYC with AVX2 for mnist_cnn's first dense layer (256 x 5408 x 128), 3 x 32 ran 103-125
# GFLOP/s against 61-64 for 6 x 32 (24 ymm: spilled) and 92 for numpy's sgemm. A panel
# row of fewer than 4 ymm leaves AVX2 (no broadcast operands) short of registers at 12:
# resnet_tiny's 16-channel convolutions ran 5.0 ms with 4 x 16 tiles, 7.4 ms with 6 x 16.
TILE_REGISTERS = 12
NARROW_TILE_REGISTERS = 8
MAX_TILE_ROWS = 6


def gemm_rows(lanes: int, nr: int | None = None) -> int:
    """Rows of a register tile of nr columns (by default the panel width, PANEL) on
    vectors of `lanes` float32."""
    if nr is None:
        # the IR's, imported only here: loading a compiled model does not import the IR
        from ..ir.ops.structural import PANEL
        nr = PANEL
    per_row = max(1, nr // lanes)
    registers = TILE_REGISTERS if lanes >= 16 or per_row >= 4 else NARROW_TILE_REGISTERS
    return max(1, min(MAX_TILE_ROWS, registers // per_row))
