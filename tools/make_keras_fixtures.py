"""Generate the Keras oracle fixtures in tests/fixtures/keras/ with real Keras.

THIS SCRIPT RUNS ONLY UNDER A SEPARATE KERAS VIRTUALENV, never under cnnc's own
environment (cnnc does not depend on TensorFlow or Keras). To recreate the venv and
rerun it (from the repository root; CPU only, no torch, nothing CUDA):

    python3 -m venv /work/kvenv
    /work/kvenv/bin/pip install 'tensorflow-cpu==2.20.*' 'keras==3.15.*' h5py 'tf_keras==2.20.*'
    /work/kvenv/bin/python tools/make_keras_fixtures.py

(made with tensorflow-cpu 2.20.0, keras 3.15.1, tf_keras 2.20.1, h5py 3.16.0, numpy 2.4,
Python 3.11). It rewrites everything under tests/fixtures/keras/ (the files it does not
make are left alone) and takes about a minute.

What it does, for each model in MODELS:
  * reads <name>.py, the model as Keras Python code (committed beside the fixtures), and
    builds the Keras model FROM THAT TEXT: every top-level statement of the file runs in a
    fresh namespace after keras.backend.clear_session(), except the ones that train,
    evaluate or load data (model.fit / model.evaluate / load_data), so compile() runs and
    the .keras file carries the compile config; layer names are those of a fresh process
    (conv2d, conv2d_1, ...);
  * replaces every weight with seeded random values (kernels N(0, (k/sqrt(fan_in))^2)
    with k = KERNEL_SCALE, 1 except 2 for "activations"; biases N(0, 0.1); batchnorm
    gamma U(0.5, 1.5), beta N(0, 0.2), moving_mean N(0, 0.5), moving_variance
    U(0.5, 2)), so predictions discriminate;
  * saves <name>.keras, <name>.weights.h5 and <name>.h5 (Keras 3's legacy HDF5), and
    <name>.predictions.npz (x: a seeded float32 batch, y: model.predict(x));
  * for the models in TF_KERAS2, runs itself in a subprocess under tf_keras (the
    tf.keras 2 code base: TF_USE_LEGACY_KERAS=1, and `import keras` bound to tf_keras),
    builds the same .py text, loads the same weights and writes <name>.tfkeras2.h5 (whole
    model), <name>.tfkeras2.weights.h5 (tf_keras's save_weights to a .weights.h5 name) and
    <name>.tfkeras2.legacy_weights.h5 (tf_keras's save_weights to a plain .h5 name; for
    the models in TF_KERAS2_LEGACY_WEIGHTS), after
    checking that tf_keras predicts the same y;
  * then the hostile fixtures (hostile/) and LAYOUT.md (the HDF5 trees).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "keras"
HOSTILE = OUT / "hostile"
SEED = 1234
BATCH = 6

# ---------------------------------------------------------------------------------------
# The models, as Keras Python code: the committed tests/fixtures/keras/<name>.py files are
# the sources (the importer's tests read the same text; tests/fixtures/keras/README.md
# says what each covers). The order fixes each model's seed.
# ---------------------------------------------------------------------------------------

MODELS = ["mnist_convnet", "conv_variants", "pooling", "batchnorm", "activations",
          "activation_layers"]

# Models also written by tf.keras 2 (tf_keras). Not "activations": tf.keras 2's
# hard_sigmoid is 0.2*x+0.5 and it has no "silu" string in older releases.
TF_KERAS2 = ["mnist_convnet", "conv_variants", "batchnorm"]
# ... and of those, the ones whose weights-only legacy .h5 is written too (not the MNIST
# convnet, to keep the fixtures small: the layout is that of model_weights/ in .h5).
TF_KERAS2_LEGACY_WEIGHTS = ["conv_variants", "batchnorm"]

SKIPPED_CALLS = ("fit", "evaluate", "load_data", "summary", "predict")


def _skipped(stmt: ast.stmt) -> bool:
    """Top-level statements that would train, evaluate, print or load data."""
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in SKIPPED_CALLS:
                return True
    return False


def build_from_text(keras, text: str, filename: str):
    """Run the model-defining statements of `text`; return the namespace's `model`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    tree = ast.parse(text, filename=filename)
    tree.body = [s for s in tree.body if not _skipped(s)]
    ns: dict = {"__name__": "__keras_fixture__"}
    exec(compile(tree, filename, "exec"), ns)  # our own trusted text
    return ns["model"]


# Kernel scale per model (default 1): larger pre-activations make every activation's
# shape show in the predictions of the "activations" chain.
KERNEL_SCALE = {"activations": 2.0}


def random_weights(model, seed: int, scale: float = 1.0) -> list[list[np.ndarray]]:
    """Seeded random values for every layer's weights (in get_weights() order)."""
    rng = np.random.default_rng(seed)
    out = []
    for layer in model.layers:
        ws = layer.get_weights()
        cls = type(layer).__name__
        new = []
        if cls == "BatchNormalization":
            gamma, beta, mean, var = ws  # center=scale=True everywhere here
            new = [
                rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0.0, 0.2, beta.shape),
                rng.normal(0.0, 0.5, mean.shape),
                rng.uniform(0.5, 2.0, var.shape),
            ]
        else:
            for w in ws:
                if w.ndim >= 2:
                    fan_in = int(np.prod(w.shape[:-1]))
                    new.append(rng.normal(0.0, scale / np.sqrt(fan_in), w.shape))
                else:
                    new.append(rng.normal(0.0, 0.1, w.shape))
        out.append([np.asarray(w, np.float32) for w in new])
    return out


def input_batch(model, seed: int) -> np.ndarray:
    shape = tuple(model.input_shape[1:])
    rng = np.random.default_rng(seed + 1)
    return rng.normal(0.0, 1.0, (BATCH,) + shape).astype(np.float32)


# ---------------------------------------------------------------------------------------
# tf.keras 2 (tf_keras) half: runs in a subprocess
# ---------------------------------------------------------------------------------------


def tf_keras2_child(name: str, weights_npz: str) -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    sys.modules["keras"] = tf_keras  # `import keras` in the fixture text means tf_keras
    assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
    text = (OUT / f"{name}.py").read_text()
    model = build_from_text(tf_keras, text, f"{name}.py")
    data = np.load(weights_npz)
    for i, layer in enumerate(model.layers):
        n = int(data[f"n{i}"])
        layer.set_weights([data[f"w{i}_{j}"] for j in range(n)])
    pred = np.load(OUT / f"{name}.predictions.npz")
    y = model.predict(pred["x"], verbose=0)
    err = float(np.max(np.abs(y - pred["y"])))
    assert err < 1e-5, (name, err)
    model.save(OUT / f"{name}.tfkeras2.h5")  # legacy whole-model HDF5
    model.save_weights(OUT / f"{name}.tfkeras2.weights.h5")
    if name in TF_KERAS2_LEGACY_WEIGHTS:
        model.save_weights(OUT / f"{name}.tfkeras2.legacy_weights.h5")
    m2 = tf_keras.models.load_model(OUT / f"{name}.tfkeras2.h5")
    assert np.max(np.abs(m2.predict(pred["x"], verbose=0) - pred["y"])) < 1e-5
    print(f"  tf_keras {tf_keras.__version__}: {name} max|dy| = {err:.2e}", flush=True)


# ---------------------------------------------------------------------------------------
# Keras 3 half
# ---------------------------------------------------------------------------------------


def make_model(keras, tf, name: str, index: int) -> None:
    text = (OUT / f"{name}.py").read_text()
    model = build_from_text(keras, text, f"{name}.py")
    ws = random_weights(model, SEED + 100 * index, KERNEL_SCALE.get(name, 1.0))
    for layer, w in zip(model.layers, ws):
        layer.set_weights(w)
    x = input_batch(model, SEED + 100 * index)
    y = model.predict(x, verbose=0).astype(np.float32)
    for suffix in (".keras", ".weights.h5", ".h5"):
        p = OUT / f"{name}{suffix}"
        if p.exists():
            p.unlink()
    model.save(OUT / f"{name}.keras")
    model.save_weights(OUT / f"{name}.weights.h5")
    model.save(OUT / f"{name}.h5")  # Keras 3's legacy HDF5 writer
    np.savez(
        OUT / f"{name}.predictions.npz",
        x=x,
        y=y,
        keras_version=np.array(keras.__version__),
        tf_version=np.array(tf.__version__),
    )
    # round trips through Keras itself
    for suffix in (".keras", ".h5"):
        m2 = keras.models.load_model(OUT / f"{name}{suffix}")
        assert np.max(np.abs(m2.predict(x, verbose=0) - y)) < 1e-6, (name, suffix)
    m3 = build_from_text(keras, text, f"{name}.py")
    m3.load_weights(OUT / f"{name}.weights.h5")
    assert np.max(np.abs(m3.predict(x, verbose=0) - y)) < 1e-6, name
    names = [layer.name for layer in model.layers]
    print(f"  {name}: input {model.input_shape} -> {model.output_shape}, layers {names}")
    if name in TF_KERAS2:
        with tempfile.TemporaryDirectory() as tmp:
            wpath = os.path.join(tmp, "w.npz")
            arrays = {}
            for i, w in enumerate(ws):
                arrays[f"n{i}"] = np.array(len(w))
                for j, a in enumerate(w):
                    arrays[f"w{i}_{j}"] = a
            np.savez(wpath, **arrays)
            subprocess.run(
                [sys.executable, __file__, "--tf-keras2", name, wpath], check=True
            )


# ---------------------------------------------------------------------------------------
# Hostile fixtures
# ---------------------------------------------------------------------------------------

BASE_TEXT = """\
import keras
from keras import layers

model = keras.Sequential([keras.Input(shape=(4, 4, 1)), layers.Flatten(), layers.Dense(3)])
"""

LAMBDA_TEXT = """\
import keras
from keras import layers

model = keras.Sequential(
    [
        keras.Input(shape=(4, 4, 1)),
        layers.Lambda(lambda x: x * 2.0),
        layers.Flatten(),
        layers.Dense(3),
    ]
)
"""


def _find_kernel(f) -> str:
    """Path of the (only) Dense kernel dataset in a legacy or Keras-3 weights file."""
    found = []

    def visit(path, obj):
        import h5py

        if isinstance(obj, h5py.Dataset) and obj.ndim == 2:
            found.append(path)

    f.visititems(visit)
    assert len(found) == 1, found
    return "/" + found[0]


def _rewrite_zip(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(info.filename, data)


def make_hostile(keras) -> None:
    import h5py

    if HOSTILE.exists():
        shutil.rmtree(HOSTILE)
    HOSTILE.mkdir(parents=True)
    base = build_from_text(keras, BASE_TEXT, "base.py")
    for layer, w in zip(base.layers, random_weights(base, SEED + 999)):
        layer.set_weights(w)
    tmp = Path(tempfile.mkdtemp())
    base.save(tmp / "base.keras")
    base.save(tmp / "base.h5")
    base.save_weights(tmp / "base.weights.h5")
    kernel = base.layers[-1].get_weights()[0]

    # 1. a Lambda layer, saved by real Keras (its config holds marshalled bytecode)
    lam = build_from_text(keras, LAMBDA_TEXT, "lambda.py")
    lam.save(HOSTILE / "lambda_layer.keras")

    # 2. a custom layer class from a non-keras module (config.json edited)
    def custom(cfg):
        for layer in cfg["config"]["layers"]:
            if layer["class_name"] == "Dense":
                layer["module"] = "evil_package.layers"
                layer["class_name"] = "EvilDense"
                layer["registered_name"] = "evil_package>EvilDense"
        return cfg

    _rewrite_zip(tmp / "base.keras", HOSTILE / "custom_layer.keras", custom)

    # 3-6: HDF5 tricks, each on a legacy whole-model .h5 and on a Keras 3 .weights.h5
    with h5py.File(HOSTILE / "external_target.h5", "w") as f:
        f["kernel"] = kernel
    kernel.astype("<f4").tofile(HOSTILE / "external_dataset.bin")
    for src, suffix in ((tmp / "base.h5", ".h5"), (tmp / "base.weights.h5", ".weights.h5")):
        # external link: the Dense kernel lives in another file
        dst = HOSTILE / f"external_link{suffix}"
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            k = _find_kernel(f)
            del f[k]
            f[k] = h5py.ExternalLink("external_target.h5", "/kernel")
        # soft link: the Dense kernel is a symbolic link to a dataset elsewhere in the file
        dst = HOSTILE / f"soft_link{suffix}"
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            k = _find_kernel(f)
            del f[k]
            f["elsewhere/kernel"] = kernel
            f[k] = h5py.SoftLink("/elsewhere/kernel")
        # external dataset: the kernel's bytes are in a raw file outside the HDF5 file
        dst = HOSTILE / f"external_dataset{suffix}"
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            k = _find_kernel(f)
            del f[k]
            f.create_dataset(
                k,
                shape=kernel.shape,
                dtype="<f4",
                external=[("external_dataset.bin", 0, kernel.nbytes)],
            )
        # huge declared shape: (2**20, 2**20) float32 = 4 TiB, chunked + gzip, never
        # written, so it costs a few KB on disk
        dst = HOSTILE / f"huge_shape{suffix}"
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            k = _find_kernel(f)
            del f[k]
            f.create_dataset(
                k,
                shape=(2**20, 2**20),
                dtype="<f4",
                chunks=(1024, 1024),
                compression="gzip",
            )

    # 7. zip bomb: a real .keras whose model.weights.h5 member inflates to > 1 GiB
    bomb_size = 1040 * 2**20  # 1.016 GiB of zeros, about 1 MB deflated
    with zipfile.ZipFile(tmp / "base.keras") as zin, zipfile.ZipFile(
        HOSTILE / "zip_bomb.keras", "w", zipfile.ZIP_DEFLATED, compresslevel=9
    ) as zout:
        for info in zin.infolist():
            if info.filename != "model.weights.h5":
                zout.writestr(info.filename, zin.read(info.filename))
        chunk = bytes(16 * 2**20)
        with zout.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(bomb_size // len(chunk)):
                member.write(chunk)
    shutil.rmtree(tmp)
    for p in sorted(HOSTILE.iterdir()):
        print(f"  hostile/{p.name}: {p.stat().st_size} bytes")


# ---------------------------------------------------------------------------------------
# LAYOUT.md
# ---------------------------------------------------------------------------------------


LAYOUT_NOTES = """\
## Notes for the importer

* **Keras 3 `.weights.h5`** (also `model.weights.h5` inside a `.keras` zip): one group
  per layer, `layers/<layer name>/vars/<i>`, the variables numbered in the layer's
  `weights` order: Conv2D/Dense `0` = kernel (HWIO / `(in, out)`), `1` = bias (absent
  with `use_bias=False`); BatchNormalization `0` gamma, `1` beta, `2` moving_mean,
  `3` moving_variance. Layers without weights still get an empty `vars` group. Each
  `vars` group has `@name` (the layer name). The compiled optimizer's variables are
  stored under `optimizer/vars` (iteration, learning rate); the model's own under
  top-level `vars`. No version attributes at all in this file (the version is in the
  `.keras` zip's `metadata.json`).
* **tf_keras (tf.keras 2.x) `save_weights('x.weights.h5')`** writes the same
  `layers/<name>/vars/<i>` tree but without `@name` attributes, and adds `metrics/`
  groups (`mean`, `mean_metric_wrapper`) for a compiled model; `optimizer/vars/0` is
  the iteration count only.
* **Legacy whole-model `.h5`** (Keras 3 and tf.keras 2 alike): root attributes
  `@keras_version`, `@backend` (`tensorflow`), `@model_config` (a JSON **string**, in
  Keras 3 too) and `@training_config` (JSON string, only for a compiled model);
  weights in `model_weights/<layer name>/...` with `@layer_names` on `model_weights`
  and `@weight_names` on each layer group. The dataset paths differ:
  * Keras 3: `model_weights/conv2d/sequential/conv2d/kernel` -- the variable's *path*
    (`<model name>/<layer name>/<var>`), no `:0`; `@weight_names` =
    `['sequential/conv2d/kernel', 'sequential/conv2d/bias']`.
  * tf.keras 2: `model_weights/conv2d/conv2d/kernel:0` -- `<layer name>/<var>:0`.
  * Both: an extra empty group `model_weights/top_level_model_weights` (not in
    `@layer_names`); layers without weights have a group with `@weight_names = []`.
  * `optimizer_weights/` (Keras 3: `adam/iteration`, `adam/learning_rate`; tf.keras 2:
    `iteration:0`) is present for compiled models.
* **tf.keras 2 `save_weights('x.h5')`** (`*.tfkeras2.legacy_weights.h5`) is the
  `model_weights` group of the whole-model file moved to the root (`@layer_names`,
  `@keras_version`, `@backend` on `/`), without `model_config`.
* **Configs.** `.keras` `config.json` layers carry `module` (`keras.layers`),
  `class_name`, `config`, `registered_name`, `build_config`; the first entry of a
  Sequential's `layers` is an `InputLayer` with `batch_shape` (also when the .py used
  `input_shape=` on the first layer). The Keras 3 `.h5` `model_config` layers have no
  `module`/`registered_name` (but their `dtype` is still a `DTypePolicy` dict).
  tf.keras 2 configs: `InputLayer` with `batch_input_shape`
  and the name `<first layer>_input` (`conv2d_input`), `dtype` a plain string
  (`"float32"`), LeakyReLU `alpha` (float32-rounded: `0.10000000149011612`) where Keras 3
  writes `negative_slope: 0.1`; Keras 3 accepts `LeakyReLU(alpha=...)` in code (with a
  warning) and stores it as `negative_slope`.
* **Activation names in configs.** Keras 3 serializes `activation="swish"` as `"silu"`.
  The string `"leaky_relu"` is `keras.activations.leaky_relu`, whose `negative_slope`
  default is **0.2** (the `LeakyReLU` layer's default is 0.3, and cnnc's `leaky_relu`
  default is 0.3). `"gelu"` is exact (`approximate=False`), `"elu"` has alpha 1.0.
  tf.keras 2's (tf_keras 2.20's too) `hard_sigmoid` is `clip(0.2*x + 0.5, 0, 1)`, not
  Keras 3's `relu6(x+3)/6`: a tf.keras-2 file with `hard_sigmoid` means a different
  function (none of the tfkeras2 fixtures uses it).
* **Layer names** are the same in every format for one model: the auto names of a
  fresh process (`conv2d`, `conv2d_1`, `max_pooling2d`, `leaky_re_lu`, `re_lu`,
  `batch_normalization_1`, `global_average_pooling2d`, ...); the model is
  `sequential`. Keras 3's `InputLayer` is `input_layer`.
"""


def h5_tree(path: Path) -> str:
    import h5py

    lines = []

    def attrs(obj, indent):
        for k, v in obj.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, np.ndarray):
                v = [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
            s = repr(v)
            if len(s) > 110:
                s = s[:100] + f"... ({len(s)} chars)"
            lines.append(f"{indent}  @{k} = {s}")

    def walk(group, indent):
        for key in group:
            link = group.get(key, getlink=True)
            obj = group[key]
            if isinstance(obj, h5py.Dataset):
                lines.append(f"{indent}{key}  dataset {obj.shape} {obj.dtype}")
                attrs(obj, indent)
            else:
                lines.append(f"{indent}{key}/")
                attrs(obj, indent)
                walk(obj, indent + "  ")
            del link

    with h5py.File(path, "r") as f:
        lines.append("/")
        attrs(f, "")
        walk(f, "  ")
    return "\n".join(lines)


def write_layout(keras, tf) -> None:
    import h5py
    import tf_keras

    parts = [
        "# HDF5 and zip layouts of the Keras fixtures",
        "",
        "Written by `tools/make_keras_fixtures.py` (do not edit by hand). "
        f"Keras {keras.__version__}, TensorFlow {tf.__version__}, tf_keras "
        f"{tf_keras.__version__}, h5py {h5py.__version__}. `@name` lines are HDF5 "
        "attributes (long values cut). h5py lists group members in alphabetical "
        "order, so read the order of layers and weights from `@layer_names` / "
        "`@weight_names` (legacy) or from the config (Keras 3), never from the listing.",
        "",
        LAYOUT_NOTES,
        "",
    ]
    shown = [
        ("conv_variants.weights.h5", "Keras 3 weights-only (`model.save_weights('x.weights.h5')`)"),
        ("batchnorm.weights.h5", "Keras 3 weights-only, batchnorm variables"),
        ("conv_variants.h5", "Keras 3 legacy whole-model HDF5 (`model.save('x.h5')`)"),
        ("batchnorm.h5", "Keras 3 legacy whole-model HDF5, batchnorm variables"),
        ("conv_variants.tfkeras2.h5", "tf.keras 2 (tf_keras) legacy whole-model HDF5"),
        ("batchnorm.tfkeras2.h5", "tf.keras 2 (tf_keras) legacy whole-model HDF5, batchnorm"),
        ("conv_variants.tfkeras2.weights.h5", "tf.keras 2 `save_weights('x.weights.h5')`"),
        ("conv_variants.tfkeras2.legacy_weights.h5", "tf.keras 2 `save_weights('x.h5')`"),
    ]
    for fname, what in shown:
        parts += [f"## `{fname}` -- {what}", "", "```", h5_tree(OUT / fname), "```", ""]
    with zipfile.ZipFile(OUT / "conv_variants.keras") as z:
        listing = "\n".join(f"{i.filename}  {i.file_size} bytes" for i in z.infolist())
        meta = z.read("metadata.json").decode()
        cfg = json.loads(z.read("config.json"))
    parts += [
        "## `conv_variants.keras` -- Keras 3 zip",
        "",
        "```",
        listing,
        "```",
        "",
        "metadata.json:",
        "",
        "```json",
        meta,
        "```",
        "",
        "config.json (indented):",
        "",
        "```json",
        json.dumps(cfg, indent=1),
        "```",
        "",
    ]
    rows = ["## Version attributes per file", "",
            "| file | keras_version | backend |", "|---|---|---|"]
    for p in sorted(OUT.glob("*.h5")):
        with h5py.File(p, "r") as f:
            kv = f.attrs.get("keras_version", "-")
            be = f.attrs.get("backend", "-")
        kv = kv.decode() if isinstance(kv, bytes) else kv
        be = be.decode() if isinstance(be, bytes) else be
        rows.append(f"| {p.name} | {kv} | {be} |")
    for p in sorted(OUT.glob("*.keras")):
        with zipfile.ZipFile(p) as z:
            m = json.loads(z.read("metadata.json"))
        rows.append(f"| {p.name} (metadata.json) | {m.get('keras_version')} | - |")
    parts += rows + [""]
    (OUT / "LAYOUT.md").write_text("\n".join(parts))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--tf-keras2":
        tf_keras2_child(sys.argv[2], sys.argv[3])
        return
    import keras
    import tensorflow as tf

    assert keras.__version__.startswith("3."), keras.__version__
    OUT.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.keras", "*.h5", "*.npz"):  # what this script writes
        for p in OUT.glob(pattern):
            p.unlink()
    print(f"keras {keras.__version__}, tensorflow {tf.__version__} -> {OUT}")
    for index, name in enumerate(MODELS):
        make_model(keras, tf, name, index)
    make_hostile(keras)
    write_layout(keras, tf)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
