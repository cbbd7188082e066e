"""The CUDA kernels of the GPU's roofs (runtime/roofs.py measures with them).

Their own module, imported only on the CUDA target: `cuda` must be a global of the
kernels' module for Numba's CUDA simulator to stand in for it.
"""

from __future__ import annotations

from numba import cuda, float32

CHAIN = 32                # multiply-adds per element and pass, as runtime/roofs.py counts


@cuda.jit(fastmath=True)
def peak(x, passes):
    """4 independent chains of multiply-adds per thread, CHAIN per pass."""
    i = cuda.grid(1)
    if i < x.shape[0]:
        a = float32(0.999)
        b = float32(0.001)
        v0 = x[i]
        v1 = v0 + float32(1.0)
        v2 = v0 + float32(2.0)
        v3 = v0 + float32(3.0)
        for _ in range(passes):
            for _ in range(CHAIN // 4):
                v0 = v0 * a + b
                v1 = v1 * a + b
                v2 = v2 * a + b
                v3 = v3 * a + b
        x[i] = v0 + v1 + v2 + v3


@cuda.jit(fastmath=True)
def triad(a, b, c, s):
    """The STREAM triad, grid-stride."""
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < a.shape[0]:
        a[i] = b[i] + s * c[i]
        i += stride
