"""ONNX export (cnnc/export/onnx.py): exported models in onnxruntime against predict.

* the example models, compiled (JIT at -O1), both layouts (alexnet: NHWC), batches 1, 3;
* every case of the op table, the models of onnx_compare.EXTRA and 20 random models of
  the differential generator in a subprocess with the JIT disabled (onnx_check.py: the
  generated kernels run as Python, a few seconds for all of them); with --long, 300 more
  tiny random models and 150 of the default profile;
* the flatten order (a test that fails when the NHWC transpose before Flatten is
  dropped), TF `same` pads, the average pool's count, batchnorm folded or with its
  epsilon, the op coverage, names, versions and metadata, the errors.

Tolerance: onnx_compare.TOL (1e-5 absolute; why there). Against the float64 torch oracle
(where no predict is needed): tolerances.FORWARD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

import cnnc
from cnnc.errors import CnncError, CnncRuntimeError
from cnnc.export import onnx as export
from cnnc.ir import ops

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from onnx_compare import BATCHNORM, FLATTEN, PADS, compare_onnx, run_onnx  # noqa: E402
from oracles import torch_ref  # noqa: E402
from oracles.tolerances import FORWARD as ORACLE_TOL  # noqa: E402  (float64 torch)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# Forward ops of the op table that never reach a graph at the export stage, and why.
# A new forward op must have an emitter (export.EMITTERS), a numpy expression (a derived
# parameter, evaluated in numpy), or a line here.
NOT_EXPORTED = {
    "fused": "formed by the fuse pass, which runs after the export stage",
    "activation": "the DSL layer: lowered to the op its fn names",
    "batchnorm_train": "training graphs only",
    "dropout_train": "training graphs only",
    "maxpool2d_code": "training graphs only (pool_codes)",
    "reshape": "the gradient of flatten: training graphs only",
}


def check_tool(tmp_path, *args: str, count: int | None = None) -> list[dict]:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", CNNC_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, str(HERE / "onnx_check.py"), *args], env=env,
                            capture_output=True, text=True, timeout=3600, check=False)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    bad = [r for r in records if not r["ok"]]
    assert not bad, f"{len(bad)} of {len(records)} differ:\n" + json.dumps(bad[:3], indent=1)
    if count is not None:
        assert len(records) == count, result.stderr[-3000:]
    assert records, result.stderr[-3000:]
    return records


def test_op_table_cases(tmp_path):
    from ops.table import FORWARD
    from onnx_compare import EXTRA
    records = check_tool(tmp_path, "ops", count=len(FORWARD) + len(EXTRA))
    assert {r["case"] for r in records} == {c.id for c in FORWARD} | set(EXTRA)


def test_random_models(tmp_path):
    check_tool(tmp_path, "random", "0", "20", count=20)


@pytest.mark.long
def test_random_models_long(tmp_path):
    check_tool(tmp_path, "random", "20", "320", count=300)
    check_tool(tmp_path, "random", "0", "150", "--profile", "default", count=150)


@pytest.mark.parametrize("name", ["mnist_cnn", "lenet5", "resnet_tiny"])
def test_examples(name):
    compare_onnx(EXAMPLES / f"{name}.cnn", fuse="all", seed=3)


def test_alexnet():
    """The largest example (62M parameters): the NHWC layout at batch 1 and 3."""
    compare_onnx(EXAMPLES / "alexnet.cnn", fuse="all", seed=4, layouts=("nhwc",))


def test_every_example_is_tested():
    tested = {"mnist_cnn", "lenet5", "resnet_tiny", "alexnet"}
    assert {p.stem for p in EXAMPLES.glob("*.cnn")} == tested


def test_flatten_order_is_nhwc(monkeypatch):
    """conv -> flatten -> dense with non-symmetric weights, against the torch oracle
    (predict: onnx_check.py's case flatten-order): exported as it is the ONNX model
    agrees; with the NHWC transpose before Flatten dropped it must not."""
    model, params = parsed(FLATTEN, seed=1)
    x = np.random.default_rng(5).normal(size=(3, 4, 5, 3)).astype(np.float32)
    ref = torch_ref.forward(model, params, x)
    assert np.abs(run_onnx(export.to_onnx(model, params), x, "nhwc") - ref).max() < ORACLE_TOL
    monkeypatch.setattr(export, "_to_nhwc", lambda e, value: e.names[value])
    permuted = run_onnx(export.to_onnx(model, params), x, "nhwc")
    assert np.abs(permuted - ref).max() > 1e-2


def parsed(text, seed=0):
    model = cnnc.parse(text).model()
    return model, torch_ref.random_params(model, seed)


def nodes(proto, op_type):
    return [n for n in proto.graph.node if n.op_type == op_type]


def attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_same_pads_and_average_count():
    """TF's `same`: the odd pixel at the bottom/right (against predict: onnx_check.py's
    case same-pads)."""
    proto = export.to_onnx(*parsed(PADS))
    (conv,) = nodes(proto, "Conv")
    assert attrs(conv)["pads"] == [0, 1, 1, 1]         # [top, left, bottom, right]
    (avg,) = nodes(proto, "AveragePool")
    assert attrs(avg)["pads"] == [0, 0, 1, 1] and attrs(avg)["count_include_pad"] == 0
    (mx,) = nodes(proto, "MaxPool")
    assert attrs(mx)["pads"] == [1, 0, 1, 1]           # 3x4 input, 3x3 window, strides 2


def test_batchnorm_folded_or_with_its_epsilon():
    """Folded into conv2d/dense where fold_batchnorm folds it; elsewhere (after pooling)
    a BatchNormalization with the layer's epsilon (against predict: onnx_check.py's case
    batchnorm)."""
    model, params = parsed(BATCHNORM)
    proto = export.to_onnx(model, params)
    assert [attrs(bn)["epsilon"] for bn in nodes(proto, "BatchNormalization")] == \
        pytest.approx([0.25, 0.5])
    assert len(nodes(proto, "Conv")[0].input) == 3         # the folded shift as its bias
    x = np.random.default_rng(2).normal(size=(3, 6, 6, 3)).astype(np.float32)
    assert np.abs(run_onnx(proto, x, "nhwc") - torch_ref.forward(model, params, x)).max() \
        < ORACLE_TOL


def test_metadata_names_and_lines(tmp_path):
    model = cnnc.compile(EXAMPLES / "mnist_cnn.cnn")
    path = tmp_path / "m.onnx"
    model.export_onnx(path)
    proto = onnx.load(path)
    assert proto.ir_version == export.IR_VERSION == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "input" and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [28, 28, 1]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    (conv,) = nodes(proto, "Conv")
    assert conv.name.startswith("conv2d/") and "layer 'conv2d'" in conv.doc_string
    assert "mnist_cnn.cnn:4:5" in conv.doc_string
    assert not nodes(proto, "Dropout") and len(nodes(proto, "Gemm")) == 2
    onnx.checker.check_model(proto, full_check=True)
    nchw = model.export_onnx(tmp_path / "n.onnx", layout="nchw")
    assert [n.op_type for n in nchw.graph.node if "input" in n.input] == ["Conv"]
    assert [n.op_type for n in proto.graph.node if "input" in n.input] == ["Transpose"]
    assert [d.dim_value for d in nchw.graph.input[0].type.tensor_type.shape.dim[1:]] == \
        [1, 28, 28]


def test_every_forward_op_has_an_emitter():
    missing = []
    for name, op in ops.OPS.items():
        if op.direction != ops.FORWARD or name in NOT_EXPORTED:
            continue
        derived = op.template is None and op.expr is not None
        if name not in export.EMITTERS and not derived:
            missing.append(name)
    assert not missing, f"ops without an ONNX emitter: {missing} (cnnc/export/onnx.py)"
    assert set(ops.activation_ops()) <= set(export.EMITTERS)
    assert not set(NOT_EXPORTED) & set(export.EMITTERS)


def test_an_op_without_emitter_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delitem(export.EMITTERS, "tanh")
    model = cnnc.parse(EXAMPLES / "lenet5.cnn").model()
    params = {p.name: np.zeros(p.shape, np.float32) for p in model.graph.params}
    with pytest.raises(CnncError) as info:
        export.export_onnx(model, params, tmp_path / "l.onnx")
    assert not list(tmp_path.iterdir())                     # nothing written
    text = info.value.render()
    assert "cannot export op 'tanh'" in text and "layer 'c1'" in text and "lenet5.cnn:5:5" in text


def test_missing_parameters_are_one_error():
    model, params = parsed(FLATTEN)
    del params["dense/bias"]
    with pytest.raises(CnncError, match="no value for parameter 'dense/bias'"):
        export.to_onnx(model, params)


def test_without_onnx(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    model = cnnc.parse(FLATTEN).model()
    with pytest.raises(CnncRuntimeError, match=r"pip install 'cnnc\[onnx\]'"):
        export.export_onnx(model, {}, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
