"""The CUDA target's module and model API: the CPU target's behaviour, on the device.

On a GPU when there is one, else in Numba's CUDA simulator (tests/conftest.py decides).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnc
from cnnc.runtime.fit import Position
from cnnc.errors import CnncRuntimeError
from conftest import ROOT, gpu_present
from tools.simulator import SITE, env_with_quicker_simulator

TINY = """
model tiny {
    input(6, 6, 2)
    conv2d(4, kernel=3, activation=relu)
    maxpool2d(2)
    dropout(0.25)
    flatten()
    dense(6, activation=relu)
    batchnorm()
    dense(3, activation=softmax)
}
train tiny {
    data = "tiny.npz"
    loss = sparse_categorical_crossentropy
    optimizer = adam(learning_rate=0.01)
    batch_size = 8
    epochs = 2
    seed = 2
}
"""


@pytest.fixture(scope="module")
def models():
    return {target: cnnc.compile(TINY, target) for target in ("cpu", "cuda")}


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 2)).astype(np.float32), rng.integers(0, 3, n)


def test_api_matches_the_cpu_target(models, tmp_path):
    cpu, gpu = models["cpu"], models["cuda"]
    assert type(gpu).__name__ == "CudaCompiledModel" and gpu.options.target.name == "cuda"
    # The same initial parameters (Keras's initializers, the same seed).
    assert list(gpu.params) == list(cpu.params)
    for name, value in cpu.params.items():
        np.testing.assert_array_equal(gpu.params[name], value)
    params = {k: np.random.default_rng(1).normal(size=v.shape).astype(np.float32)
              for k, v in cpu.params.items()}
    params["batch_normalization/moving_variance"] = np.abs(
        params["batch_normalization/moving_variance"]) + 0.5
    for model in (cpu, gpu):
        model.set_params(params)
    x, y = data()
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), atol=1e-5)
    np.testing.assert_allclose(gpu.predict(x, batch_size=5), cpu.predict(x), atol=1e-5)
    loss_c, grads_c = cpu.gradients(x[:5], y[:5], dropout=True, seed=4)
    loss_g, grads_g = gpu.gradients(x[:5], y[:5], dropout=True, seed=4)
    assert abs(loss_g - loss_c) <= 1e-5 * max(1, abs(loss_c))
    for name, g in grads_c.items():
        assert isinstance(grads_g[name], np.ndarray)
        np.testing.assert_allclose(grads_g[name], g, atol=1e-5, err_msg=name)
    # Weights files are the same format on both targets.
    gpu.save_weights(tmp_path / "w.npz")
    cpu.load_weights(tmp_path / "w.npz")
    np.testing.assert_allclose(cpu.predict(x), gpu.predict(x), atol=1e-5)
    with pytest.raises(ValueError, match="read-only"):
        gpu.params["dense/bias"][0] = 1.0
    with pytest.raises(ValueError, match=r"received dtype float64"):
        gpu.predict(x.astype(np.float64))


def test_fit_matches_the_cpu_target(models):
    """fit() on both targets from the same parameters, with validation: the same history,
    parameters, evaluation and predictions (the CPU target is checked against PyTorch
    elsewhere; each CUDA kernel is, in the other tests of this folder)."""
    x, y = data(30, seed=11)
    histories = {}
    for target, model in models.items():
        model.set_params(model.module.init_params(3))
        model._state = None                      # a fresh optimizer, from epoch 1
        model._position = Position()
        histories[target] = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.2,
                                      verbose=0).history
    cpu, gpu = models["cpu"], models["cuda"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(histories["cuda"][key], histories["cpu"][key], atol=1e-5)
    for name, value in cpu.params.items():
        np.testing.assert_allclose(gpu.params[name], value, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), atol=1e-5)
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), atol=1e-5)


def test_training_keeps_state_on_the_device_and_host_copies_follow(models):
    gpu = models["cuda"]
    x, y = data(32, seed=3)
    gpu.set_params(gpu.module.init_params(0))
    gpu._state = None
    before = gpu.params["dense/kernel"].copy()
    gpu.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert gpu._host_stale                       # parameters trained on the device...
    after = gpu.params["dense/kernel"]           # ...read back when asked for
    assert not gpu._host_stale and not np.allclose(after, before)
    state = gpu._opt_state()
    assert all(gpu.module.on_device(v) for v in state.values())
    # set_params after training uploads before the next use.
    gpu.set_params({"dense/bias": np.full(6, 0.5, np.float32)})
    np.testing.assert_allclose(gpu.module.to_host(gpu._device_params())["dense/bias"], 0.5)


def test_training_is_deterministic(models):
    """Split reductions add their slices in a fixed order: two runs from the same start
    give the same parameters bit for bit."""
    gpu = models["cuda"]
    x, y = data(32, seed=5)
    results = []
    for _ in range(2):
        gpu.set_params(gpu.module.init_params(7))
        gpu._state = None                        # a fresh optimizer, from epoch 1
        gpu._position = Position()
        gpu.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=1)
        results.append({k: v.copy() for k, v in gpu.params.items()})
    for name in results[0]:
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


def _site_without_cnnc(tmp_path):
    """A site directory holding just numpy, numba, llvmlite, numba-cuda and what they
    load, linked from this environment: a Python without cnnc. The `cuda` and `nvidia`
    namespace packages may be spread over several directories: their parts are merged."""
    import sysconfig
    site = tmp_path / "site"
    site.mkdir()
    roots = [p for p in sys.path if os.path.isdir(p)] + [sysconfig.get_paths()["purelib"]]
    wanted = ("numpy", "numpy.libs", "numba", "llvmlite", "numba_cuda", "packaging",
              "_numba_cuda_redirector.py", "_numba_cuda_redirector.pth",
              "greenlet")                   # the tests' simulator (tests/tools/simulator.py)
    for name in wanted:
        for root in roots:                  # a package folder, or the redirector's files
            if (os.path.isfile if name.endswith((".py", ".pth")) else os.path.isdir)(
                    os.path.join(root, name)):
                os.symlink(os.path.join(root, name), site / name)
                break
    for root in roots:                      # versions are read from their metadata
        for entry in os.listdir(root):
            if entry.endswith(".dist-info") and entry.lower().startswith(
                    ("numpy", "numba", "llvmlite", "cuda_", "nvidia_", "packaging",
                     "greenlet")) \
                    and not (site / entry).exists():
                os.symlink(os.path.join(root, entry), site / entry)
    for namespace in ("cuda", "nvidia"):
        for root in roots:
            folder = os.path.join(root, namespace)
            if not os.path.isdir(folder):
                continue
            (site / namespace).mkdir(exist_ok=True)
            for entry in os.listdir(folder):
                if not (site / namespace / entry).exists():
                    os.symlink(os.path.join(folder, entry), site / namespace / entry)
    return site


def test_standalone_module_runs_without_cnnc(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    out = tmp_path / "tiny.py"
    result = subprocess.run([sys.executable, "-m", "cnnc", "compile", str(tmp_path / "tiny.cnn"),
                             "--target", "cuda", "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    x, y = data(24)
    np.savez(tmp_path / "tiny_data.npz", x_train=x[:16], y_train=y[:16], x_test=x[16:],
             y_test=y[16:])
    site = _site_without_cnnc(tmp_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           **{k: v for k, v in os.environ.items() if k.startswith(("NUMBA_", "CUDA"))}}
    run = textwrap.dedent(f"""
        import runpy, site, sys
        site.addsitedir({str(site)!r})      # processes numba-cuda's .pth, as pip's site does
        # the tests' quicker simulator when it is on (-S: no sitecustomize)
        runpy.run_path({str(SITE.parent / "simulator.py")!r})["quicker_simulator"]()
        sys.argv = sys.argv[1:]
        if sys.argv[0] == "-c":
            exec(sys.argv[1])
        else:
            runpy.run_path(sys.argv[0], run_name="__main__")
    """)

    def python(*args):
        return subprocess.run([sys.executable, "-S", "-c", run, *args], env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=900)

    check = python("-c", "import cnnc")
    assert check.returncode != 0 and "No module named 'cnnc'" in check.stderr
    result = python(str(out))
    assert result.returncode == 0, result.stderr
    assert "tiny: forward (8, 6, 6, 2) -> (8, 3) float32" in result.stdout
    result = python(str(out), "train", "tiny_data.npz", "2", "8")
    assert result.returncode == 0 and not result.stderr, result.stderr   # quiet at exit too
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2: loss ") and \
        "test accuracy" in lines[1], result.stdout


def test_cli_trains_on_the_cuda_target(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    x, y = data(24, seed=9)
    np.savez(tmp_path / "tiny.npz", x_train=x[:16], y_train=y[:16], x_test=x[16:],
             y_test=y[16:])
    env = env_with_quicker_simulator()
    result = subprocess.run([sys.executable, "-m", "cnnc", "train", "tiny.cnn", "--target",
                             "cuda", "--quiet", "-o", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr       # quiet at exit too
    assert "epoch 2/2" in result.stdout and "test: loss" in result.stdout
    weights = np.load(tmp_path / "run" / "weights.npz")
    model = cnnc.compile(tmp_path / "tiny.cnn")
    model.load_weights(tmp_path / "run" / "weights.npz")
    assert set(weights.files) == set(model.params)
    # Resuming from the last checkpoint: nothing left to do, the same weights.
    result = subprocess.run([sys.executable, "-m", "cnnc", "train", "tiny.cnn", "--target",
                             "cuda", "--quiet", "--resume", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    again = np.load(tmp_path / "run" / "weights.npz")
    for name in weights.files:
        np.testing.assert_array_equal(again[name], weights[name])


@pytest.mark.skipif(gpu_present(), reason="a GPU is present: the CUDA target can run")
def test_no_gpu_and_no_simulator_is_one_clear_error(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    x, y = data(16)
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=y)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-m", "cnnc", "train", "tiny.cnn", "--target",
                             "cuda"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("cnnc: error: the cuda target cannot run: no CUDA GPU")
    assert "set NUMBA_ENABLE_CUDASIM=1" in lines[0]
    code = ("import cnnc, sys\n"
            "from cnnc.errors import CnncRuntimeError\n"
            "try:\n    cnnc.compile(sys.argv[1], 'cuda')\n"
            "except CnncRuntimeError as e:\n    print('refused:', e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tiny.cnn")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.stdout.startswith("refused: the cuda target cannot run"), result.stderr
    assert issubclass(CnncRuntimeError, Exception)


def test_generated_module_documents_the_launch_geometry():
    from cnnc.compiler import lower
    source = lower(ROOT / "examples" / "mnist_cnn.cnn", target="cuda").source()
    head = source.split('"""')[0]
    assert "Model mnist_cnn from mnist_cnn.cnn, target cuda.\n# Fusion rules: " \
        "epilogue,pool,row,elementwise,loss,siblings,updates\n" in head
    assert "from numba import cuda" in source and "njit" not in source
    import ast
    tree = ast.parse(source)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    launcher = functions["conv2d_bias_relu_maxpool_fwd"]
    doc = ast.get_docstring(launcher)
    assert "Implicit GEMM" in doc and "64x32 output tiles per block of 8x16 threads" in doc
    kernel = functions["conv2d_bias_relu_maxpool_fwd_kernel"]
    assert any("cuda.jit" in ast.unparse(d) for d in kernel.decorator_list)
    shared = [n for n in ast.walk(kernel) if isinstance(n, ast.Attribute)
              and n.attr == "shared"]
    assert shared, "the convolution stages its operands through shared memory"
