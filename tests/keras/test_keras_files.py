"""Keras files: hostile ones refused with one line naming the file (exit 2, nothing
written), weights checked against the model, configs Keras never deserializes."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import cnnc
from cnnc import CnncError, cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "keras"
HOSTILE = FIXTURES / "hostile"

REFUSALS = {
    "lambda_layer.keras": "is a Lambda layer: it holds Python code",
    "custom_layer.keras": "is a custom class",
    "external_link.h5": "is an external link",
    "external_link.weights.h5": "is an external link",
    "soft_link.h5": "is a soft link",
    "soft_link.weights.h5": "is a soft link",
    "external_dataset.h5": "is an external dataset",
    "external_dataset.weights.h5": "is an external dataset",
    "huge_shape.h5": "refused unread",
    "huge_shape.weights.h5": "refused unread",
    "zip_bomb.keras": "a zip bomb?",
}


def run(capsys, *args) -> tuple[int, str]:
    status = cli.main(["import", *map(str, args)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_hostile_files_are_refused_with_one_line(tmp_path, capsys, name):
    out = tmp_path / "m.cnn"
    if name.endswith(".weights.h5"):
        # the hostile weights files hold one dense layer; give them a model that has it
        code = tmp_path / "dense.py"
        code.write_text("import keras\nfrom keras import layers\nmodel = keras.Sequential("
                        "[keras.Input(shape=(4, 4, 1)), layers.Flatten(), layers.Dense(3)])\n")
        args = [code, "--weights", HOSTILE / name]
    else:
        args = [HOSTILE / name]
    status, err = run(capsys, *args, "-o", out)
    assert status == 2, err
    assert REFUSALS[name] in err, err
    assert len(err.strip().splitlines()) == 1 and str(HOSTILE / name) in err
    assert list(tmp_path.glob("m.*")) == []


def test_the_external_target_is_never_opened(tmp_path, capsys, monkeypatch):
    """The external link's target is present beside it: refused all the same."""
    assert (HOSTILE / "external_target.h5").is_file()
    status, err = run(capsys, HOSTILE / "external_link.h5", "-o", tmp_path / "m.cnn")
    assert status == 2 and "external_target.h5" in err


def _weights_copy(tmp_path, change) -> Path:
    path = tmp_path / "w.weights.h5"
    shutil.copy(FIXTURES / "mnist_convnet.weights.h5", path)
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _import_code(weights):
    return cnnc.import_keras(FIXTURES / "mnist_convnet.py", weights=weights)


def test_weights_of_another_model_are_refused_naming_the_layer():
    with pytest.raises(CnncError) as info:
        _import_code(FIXTURES / "conv_variants.weights.h5")
    assert info.value.render() == (f"{FIXTURES / 'conv_variants.weights.h5'}: error: holds "
                                   f"weights for layer 'conv2d_2', which the model does not "
                                   f"have")


def test_weights_of_another_dtype_are_refused(tmp_path):
    def to_float16(f):
        data = f["layers/dense/vars/0"][()]
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = data.astype(np.float16)
    with pytest.raises(CnncError, match="dense': kernel is float16, not float32"):
        _import_code(_weights_copy(tmp_path, to_float16))


def test_a_wrong_shape_is_refused_before_reading(tmp_path):
    def reshape(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((1600, 11), np.float32)
    with pytest.raises(CnncError, match=r"'dense': kernel has shape \(1600, 11\) in the file, "
                                        r"the model expects \(1600, 10\)"):
        _import_code(_weights_copy(tmp_path, reshape))


def test_missing_and_extra_weights_are_named(tmp_path):
    with pytest.raises(CnncError, match="no weights for layer 'dense'"):
        _import_code(_weights_copy(tmp_path, lambda f: f["layers/dense"].pop("vars")))
    with pytest.raises(CnncError, match="holds weights for layer 'extra'"):
        _import_code(_weights_copy(tmp_path, lambda f: f.create_dataset(
            "layers/extra/vars/0", data=np.zeros(3, np.float32))))
    with pytest.raises(CnncError, match="the file holds 3 weights, the model expects 2"):
        _import_code(_weights_copy(tmp_path, lambda f: f.create_dataset(
            "layers/dense/vars/2", data=np.zeros(3, np.float32))))


def test_tf_keras_2_hard_sigmoid_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "hs.h5"
    shutil.copy(FIXTURES / "mnist_convnet.tfkeras2.h5", path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        f.attrs["model_config"] = config.replace('"relu"', '"hard_sigmoid"', 1)
    with pytest.raises(CnncError) as info:
        cnnc.import_keras(path)
    out = info.value.render()
    assert "layer 'conv2d'" in out and "0.2 * x + 0.5" in out and len(out.splitlines()) == 1


def _keras_zip(tmp_path, config: dict, name="m.keras") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return path


def _functional(skip: bool) -> dict:
    def layer(cls, name, config, inbound):
        history = [{"class_name": "__keras_tensor__",
                    "config": {"shape": [None], "keras_history": [inbound, 0, 0]}}]
        return {"module": "keras.layers", "class_name": cls, "registered_name": None,
                "config": {"name": name, **config},
                "inbound_nodes": [{"args": history, "kwargs": {}}] if inbound else []}
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "chain", "layers": [
                layer("InputLayer", "input_layer", {"batch_shape": [None, 4, 4, 2]}, None),
                layer("Flatten", "flatten", {}, "input_layer"),
                layer("Dense", "dense", {"units": 3}, "flatten"),
                layer("Dense", "dense_1", {"units": 2}, "flatten" if skip else "dense")],
                "input_layers": [["input_layer", 0, 0]],
                "output_layers": [["dense_1", 0, 0]]}}


def test_a_sequential_shaped_functional_model_is_accepted(tmp_path):
    result = cnnc.import_keras(_keras_zip(tmp_path, _functional(False)))
    assert result.model_name == "chain" and result.params is None
    assert 'dense(2, name="dense_1")' in result.text
    cnnc.parse(result.text)


def test_a_functional_model_that_is_not_a_chain_is_refused(tmp_path):
    with pytest.raises(CnncError, match="layer 'dense_1': the Functional model is not a "
                                        "simple chain"):
        cnnc.import_keras(_keras_zip(tmp_path, _functional(True)))


def test_a_non_keras_module_in_a_config_is_refused(tmp_path):
    config = _functional(False)
    config["config"]["layers"][2]["module"] = "evil.layers"
    with pytest.raises(CnncError, match="layer 'dense' is a custom class"):
        cnnc.import_keras(_keras_zip(tmp_path, config))


def test_a_mixed_precision_policy_is_refused(tmp_path):
    config = _functional(False)
    config["config"]["layers"][2]["config"]["dtype"] = {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}
    with pytest.raises(CnncError, match="dtype mixed_float16 is not supported"):
        cnnc.import_keras(_keras_zip(tmp_path, config))


def test_a_zip_member_that_lies_about_its_size_is_refused(tmp_path):
    path = _keras_zip(tmp_path, _functional(False))
    data = bytearray(path.read_bytes())
    # shrink the declared size of config.json in its local and central headers
    size = len(json.dumps(_functional(False)))
    data = data.replace(size.to_bytes(4, "little"), (10).to_bytes(4, "little"))
    path.write_bytes(bytes(data))
    with pytest.raises(CnncError):
        cnnc.import_keras(path)


def test_without_h5py_one_line_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    status, err = run(capsys, FIXTURES / "mnist_convnet.keras", "-o", tmp_path / "m.cnn")
    assert status == 1 and "pip install 'cnnc[keras]'" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_weights_only_file_as_the_model_says_what_to_do(tmp_path, capsys):
    status, err = run(capsys, FIXTURES / "mnist_convnet.tfkeras2.weights.h5", "-o",
                      tmp_path / "m.cnn")
    assert status == 2 and "--weights" in err


def test_the_compile_config_of_a_file_becomes_the_train_block():
    for name in ("conv_variants.keras", "conv_variants.h5", "conv_variants.tfkeras2.h5"):
        text = cnnc.import_keras(FIXTURES / name).text
        assert text.endswith("train sequential {\n"
                             "    loss      = categorical_crossentropy\n"
                             "    optimizer = adam(learning_rate=0.001, beta_1=0.9, "
                             "beta_2=0.999, epsilon=1e-7)\n"
                             "    metrics   = [accuracy]\n}\n"), name
        cnnc.parse(text)


def test_a_compile_config_cnnc_cannot_express_is_said_in_the_header(tmp_path):
    config = _functional(False)
    config["compile_config"] = {"optimizer": {"module": "keras.optimizers",
                                              "class_name": "Nadam", "config": {}},
                                "loss": "mse", "metrics": []}
    text = cnnc.import_keras(_keras_zip(tmp_path, config)).text
    assert text.splitlines()[1] == "# No train block: optimizer 'Nadam' is not supported " \
                                   "by cnnc (SGD, Adam, RMSprop, Adadelta)"
    assert "\ntrain " not in text


@pytest.mark.parametrize("config", [
    {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": 5}}]}},
    {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 4, 1]}},
        {"class_name": "Dense", "config": "units"}]}},
    {"class_name": "Sequential", "config": {"layers": [7]}},
    {"class_name": "Sequential", "config": {"layers": []}},
    {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 4, 1]}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": "x", "kernel_size": 3}}]}},
    {"class_name": "Sequential", "compile_config": [], "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 4, 1]}},
        {"class_name": "Flatten", "config": {"name": "f"}}]}},
])
def test_malformed_configs_are_bad_input_not_internal_errors(tmp_path, capsys, config):
    status, err = run(capsys, _keras_zip(tmp_path, config), "-o", tmp_path / "m.cnn")
    assert status in (0, 2) and "internal error" not in err, err


@pytest.mark.parametrize("name", ["mnist_convnet.keras", "mnist_convnet.h5"])
def test_truncated_files_are_refused(tmp_path, capsys, name):
    path = tmp_path / name
    path.write_bytes((FIXTURES / name).read_bytes()[:5000])
    status, err = run(capsys, path, "-o", tmp_path / "m.cnn")
    assert status == 2 and str(path) in err and "internal error" not in err, err


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_config_nested_absurdly_deep_is_one_line(tmp_path, capsys, depth):
    """Deep enough for json.loads (5000) or for the walk over its objects (500) to recurse
    past Python's limit: bad input, not an internal error."""
    inner = '{"class_name": "Foo", "config": {"a": ' * depth + "1" + "}}" * depth
    text = ('{"class_name": "Sequential", "config": {"name": "s", "layers": ['
            '{"class_name": "InputLayer", "config": {"batch_shape": [null, 4, 4, 1]}}, '
            '{"class_name": "Dense", "config": {"name": "d", "units": 2, '
            f'"kernel_regularizer": {inner}}}}}]}}}}')
    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", text)
    status, err = run(capsys, path, "-o", tmp_path / "m.cnn")
    assert status == 2 and "internal error" not in err and str(path) in err, err
    assert not (tmp_path / "m.cnn").exists()
