"""Every tolerance the oracle tests use, in one place.

cnnc computes in float32; the references (PyTorch, finite differences) in float64.
"""

FORWARD = 1e-4    # |cnnc - torch| of a forward value (absolute; outputs are O(1))
GRADIENT = 1e-4   # |g - g_torch| <= GRADIENT * max(1, |g_torch|): losses, gradients,
                  # moving statistics (absolute or relative, whichever is larger)
STEP = 1e-5       # parameters and optimizer state after one step, same rule
FINITE_DIFFERENCES = 1e-6   # float64 gradients against central differences (relative)
FLOAT64 = 1e-9    # float64 modules (the same kernels on float64 elements) against torch
TARGETS = 1e-5    # the CUDA target against the CPU target on the same parameters

# Batches each target runs a forward case at: the CUDA simulator runs every GPU thread's
# code as Python (tests/tools/simulator.py), so its batches are small.
BATCHES = {"cpu": (1, 7), "cuda": (1, 3)}
