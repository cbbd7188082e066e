"""Every CUDA kernel of every example model compiles for real, without a GPU.

The simulator forgives what a GPU does not (negative indices wrap, host-only numpy calls
run), so the kernels also go through the real compiler: numba-cuda's compile_ptx (Numba's
typing and lowering, then NVVM) for compute capability 9.0 (7.5 and 8.0 with --long),
and the PTX through ptxas -arch=sm_90, the CUDA toolkit's assembler
(tests/tools/ptx_check.py). Both run in a subprocess with Numba's real CUDA target, which
needs no GPU to compile.

Every kernel must also keep its register tiles in registers: no stack frame, no spills.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnc.runtime.ptx import find_ptxas
from conftest import EXAMPLES, ROOT

EXAMPLE_FILES = sorted(str(p) for p in EXAMPLES.glob("*.cnn"))


def real_cuda_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CNNC_CACHE_DIR"] = str(tmp_path / "cache")
    return env


@pytest.fixture(scope="module")
def ptxas():
    path = find_ptxas()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("ptxas (CUDA toolkit) not found: CI must assemble the kernels")
        pytest.skip("ptxas (CUDA toolkit) not found")
    return path


def check_example_kernels(tmp_path, ccs: list[str]) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/ptx_check.py"),
                             "--cc", ",".join(ccs), "--arch", "sm_90", *EXAMPLE_FILES],
                            env=real_cuda_env(tmp_path), capture_output=True, text=True,
                            timeout=1800)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records, result.stderr[-3000:]
    bad = [r for r in records if not r["ok"]]
    assert not bad, json.dumps(bad[:3], indent=1)
    assert result.returncode == 0, result.stderr[-3000:]
    models = {m for r in records for m in r["models"]}
    assert models == {"alexnet", "lenet5", "mnist_cnn", "resnet_tiny"}
    assert {r["cc"] for r in records} == set(ccs)
    kernels = {r["kernel"] for r in records}
    for name in ("conv2d_bias_relu_maxpool_fwd_kernel", "conv2d_grad_weight_bwd_partial",
                 "adadelta_update_all_kernel", "softmax_xent_loss_kernel"):
        assert name in kernels, name
    assert len(records) >= len(ccs) * 80
    spilled = [(r["kernel"], r["cc"]) for r in records
               if r["stack_bytes"] or r["spill_stores"] or r["spill_loads"]]
    assert not spilled, spilled


def test_every_example_kernel_compiles_and_assembles(tmp_path, ptxas):
    """The newest compute capability cnnc targets, the one ptxas assembles for."""
    check_example_kernels(tmp_path, ["9.0"])


@pytest.mark.long
def test_every_example_kernel_compiles_for_older_gpus(tmp_path, ptxas):
    """The oldest compute capability cnnc targets (7.5) and Ampere's (8.0). Out of CI
    (--long): each took as long as 9.0's check, the suite's longest test, and the kernels
    use nothing that 7.5 lacks (float32 atomics, shared memory, barriers)."""
    check_example_kernels(tmp_path, ["7.5", "8.0"])


def test_cli_writes_ptx_and_explain_reports_resources(tmp_path, ptxas):
    env = real_cuda_env(tmp_path)
    out = tmp_path / "ptx"
    result = subprocess.run([sys.executable, "-m", "cnnc", "compile",
                             str(EXAMPLES / "mnist_cnn.cnn"), "--target", "cuda", "--ptx",
                             str(out), "-o", str(tmp_path / "m.py")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "inference runs 3 kernel groups (3 kernel functions); a training step runs 13 " \
        "kernel groups; target cuda" in result.stderr
    files = sorted(p.name for p in out.glob("*.ptx"))
    assert "conv2d_bias_relu_maxpool_fwd_kernel.ptx" in files and len(files) >= 20
    text = (out / "conv2d_bias_relu_maxpool_fwd_kernel.ptx").read_text()
    assert ".target sm_90" in text and ".entry" in text
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain",
                             str(EXAMPLES / "mnist_cnn.cnn"), "--target", "cuda", "--json"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    kernels = {k["name"]: k for k in json.loads(result.stdout)["kernel_resources"]}
    conv = kernels["conv2d_bias_relu_maxpool_fwd_kernel"]
    assert 32 <= conv["registers"] <= 255 and conv["shared_bytes"] > 0
    assert conv["arch"] == "sm_90"
    tiny = tmp_path / "tiny.cnn"
    tiny.write_text("model tiny { input(8, 8, 2) conv2d(4, kernel=3) flatten() dense(3) }")
    result = subprocess.run([sys.executable, "-m", "cnnc", "explain", str(tiny), "--target",
                             "cuda"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "CUDA kernels of the module (compute capability 9.0, ptxas -arch=sm_90)" in \
        result.stdout


def test_ptx_needs_the_real_cuda_target(tmp_path):
    env = dict(real_cuda_env(tmp_path), NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run([sys.executable, "-m", "cnnc", "compile",
                             str(EXAMPLES / "lenet5.cnn"), "--target", "cuda", "--ptx",
                             str(tmp_path / "ptx"), "-o", str(tmp_path / "m.py")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert result.stderr.startswith("cnnc: error: compiling to PTX needs Numba's real CUDA "
                                    "target: unset NUMBA_ENABLE_CUDASIM")
    assert "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "cnnc", "compile",
                             str(EXAMPLES / "lenet5.cnn"), "--ptx", str(tmp_path / "ptx")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "--ptx needs --target cuda" in result.stderr


def test_every_activation_compiles_and_assembles(tmp_path, ptxas):
    """Each activation of the op table (forward and gradient, in a dense layer's epilogue)
    through NVVM and ptxas: the math functions they call exist on the device."""
    from ops.table import activation_variants
    layers = " ".join(f"dense(4, activation={a})" for a in activation_variants())
    path = tmp_path / "activations.cnn"
    path.write_text(f"model activations {{ input(2, 2, 2) flatten() {layers} "
                    f"dense(3, activation=softmax) }}\n"
                    f"train activations {{ loss = categorical_crossentropy optimizer = sgd }}\n")
    result = subprocess.run([sys.executable, str(ROOT / "tests/tools/ptx_check.py"),
                             "--cc", "9.0", "--arch", "sm_90", str(path)],
                            env=real_cuda_env(tmp_path), capture_output=True, text=True,
                            timeout=1800)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records and all(r["ok"] for r in records), \
        json.dumps([r for r in records if not r["ok"]][:3], indent=1) + result.stderr[-2000:]
    kernels = " ".join(r["kernel"] for r in records)
    for name in ("gelu", "silu", "hard_sigmoid", "gelu_grad", "silu_grad", "hard_sigmoid_grad"):
        assert f"_{name}_" in kernels, name
