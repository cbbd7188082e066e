"""ONNX export: a checked model and its parameters as an ONNX model (opset 17, IR 8).

The exporter converts the IR graph at the inference stage -- after simplify_inference
(dropout and linear activations gone) and fold_batchnorm -- one emitter per op, all in
EMITTERS below. A batchnorm that fold_batchnorm folded is exported folded: the conv2d
or dense kernel scaled and the bias shifted, computed by the op table's own numpy
expressions for the derived parameters (bn_scale, scale_kernel, fold_bias, fold_shift),
so the ONNX model holds the very float32 weights cnnc's kernels read; a batchnorm it
refused (after pooling, after a residual add) is an ONNX BatchNormalization with the
moving statistics and cnnc's epsilon written explicitly.

Layouts. cnnc's activations are NHWC; ONNX's Conv and pooling ops are NCHW with OIHW
kernels. Inside the exported graph every image tensor is NCHW: the NHWC input is
transposed once at the start (not with layout="nchw": then the input, and an image
output, are NCHW), HWIO kernels are transposed to OIHW in numpy, and channel-axis ops
(bias, batchnorm, softmax) work on axis 1. `flatten` is the one op whose result depends
on the layout: cnnc flattens in NHWC order (channel fastest), so the NCHW tensor is
transposed back to NHWC before ONNX's Flatten -- without that transpose the first dense
layer would read a silently permuted input (tests/export/test_onnx.py checks this).

TensorFlow's `same` padding puts an odd pixel at the bottom/right; the IR nodes carry
the pads the front end computed by that rule, written as explicit ONNX pads (never
auto_pad). Average pooling leaves padding out of its count (count_include_pad=0), as TF
and cnnc do; max pooling's padding never wins.

Every ONNX node is named after the IR node and carries the layer name and its line in
the .cnn file in its doc string. The model is checked (onnx.checker, full check) and its
shapes inferred before it is written, atomically.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import CnncError, CnncRuntimeError, Diagnostic
from ..ir import ops
from ..ir.graph import Graph, Node
from ..passes import INFERENCE_PIPELINE, PassContext, run_pipeline
from ..version import __version__

# Opset 13 would hold every op used here (Softmax on any axis, Erf, HardSigmoid); 17 is
# a recent opset that runtimes widely support (onnxruntime >= 1.12). IR version 8 is the one
# onnx 1.12 pairs with opset 17: pinned, so that a newer onnx package does not write an
# IR version older runtimes refuse.
OPSET = 17
IR_VERSION = 8
LAYOUTS = ("nhwc", "nchw")
MAX_BYTES = 2**31 - 2**24     # protobuf's 2 GiB message limit, less room for the graph
INSTALL = "ONNX export needs the onnx package: pip install 'cnnc[onnx]'"

# The passes the exported graph has been through: the inference stage, before the
# target-specific ones (pack_kernels' layouts are the CPU kernels' business, fusion is
# cnnc's kernel grouping, which an ONNX runtime does its own way).
EXPORT_PASSES = ("simplify_inference", "fold_batchnorm")


def require_onnx():
    """The onnx module, or CnncRuntimeError (exit 1) saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise CnncRuntimeError(INSTALL) from None
    return onnx


def export_graph(graph: Graph) -> Graph:
    """The IR graph the exporter converts: `graph` (as lowered) after EXPORT_PASSES."""
    pipeline = [(name, run) for name, run in INFERENCE_PIPELINE if name in EXPORT_PASSES]
    verify = os.environ.get("CNNC_VERIFY") == "1"        # as the compiler's pipeline
    return run_pipeline(graph, pipeline, PassContext(pack=False, verify_each=verify))


# --- the conversion context ----------------------------------------------------------------

@dataclass
class Emit:
    """What emitters build: ONNX nodes and initializers, and the name of each IR value's
    ONNX tensor. Image activations are NCHW tensors inside the graph."""

    graph: Graph
    params: dict[str, np.ndarray]            # parameters and derived parameters by IR value
    file: str
    nodes: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)   # IR value -> ONNX tensor
    absorbed: dict[str, str] = field(default_factory=dict)  # bias_add node -> its bias value
    node: Node | None = None                 # the IR node being emitted
    count: int = 0
    taken: set = field(default_factory=set)  # ONNX node names used

    def image(self, value: str) -> bool:
        return len(self.graph.type(value).shape) == 3

    def x(self, i: int = 0) -> str:
        return self.names[self.node.inputs[i]]

    def weight(self, value: str, array: np.ndarray | None = None, suffix: str = "") -> str:
        """An initializer: parameter `value` (or `array` derived from it) as float32."""
        from onnx import numpy_helper
        name = value + suffix
        if name not in self.initializers:
            data = self.params[value] if array is None else array
            self.initializers[name] = numpy_helper.from_array(
                np.ascontiguousarray(data, dtype=np.float32), name)
        return name

    def channel(self, value: str, like: str) -> str:
        """Per-channel parameter `value` shaped to broadcast over the channels of IR value
        `like`: (C, 1, 1) for an NCHW image, (C,) for a flat tensor."""
        if not self.image(like):
            return self.weight(value)
        return self.weight(value, self.params[value].reshape(-1, 1, 1), "/c11")

    def where(self, node: Node) -> str:
        return f"{self.file}:{node.loc.line}:{node.loc.col}" if node.loc else self.file

    def op(self, op_type: str, inputs: list[str], out: str | None = None, also=(),
           **attrs) -> str:
        """Append one ONNX node for the current IR node (and the IR nodes `also` it
        computes too); returns its output tensor (`out`, else a fresh name). Names and
        doc strings carry the layer and source line."""
        from onnx import helper
        node = self.node
        self.count += 1
        name = f"{node.name}/{op_type}" if out is not None else \
            f"{node.name}/{op_type}_{self.count}"
        if name in self.taken:
            name = f"{name}_{self.count}"
        self.taken.add(name)
        out = out or name
        doc = "; ".join(f"{n.op} of layer '{n.layer}' ({self.where(n)})"
                        for n in (node, *also))
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name,
                                           doc_string=doc, **attrs))
        return out

    def define(self, tensor: str) -> None:
        """The current IR node's output is ONNX tensor `tensor`."""
        self.names[self.node.output] = tensor


def _unary(op_type: str, **fixed) -> Callable[[Emit, Node], None]:
    """One ONNX op on the input; `fixed` attributes are numbers, or (strings) the name of
    the IR node's attribute that holds the value (alpha="alpha")."""
    def emit(e: Emit, node: Node) -> None:
        attrs = {k: (node.attrs[v] if isinstance(v, str) else v) for k, v in fixed.items()}
        e.define(e.op(op_type, [e.x()], node.output, **attrs))
    return emit


def _alias(e: Emit, node: Node) -> None:
    """The identity at inference (dropout, linear): no node, the input tensor itself."""
    e.define(e.x())


def _window(node: Node) -> dict:
    """kernel_shape, strides and pads of a windowed op; cnnc's pads are TF's `same` rule
    (pad_top, pad_bottom, pad_left, pad_right), ONNX's [top, left, bottom, right]."""
    window = ops.get(node.op).window
    size, strides, dilation = window.geometry(node.attrs)
    top, bottom, left, right = node.attrs["pads"]
    attrs = dict(kernel_shape=list(size), strides=list(strides), pads=[top, left, bottom, right])
    if window.dilated:
        attrs["dilations"] = list(dilation)
    return attrs


def _with_bias(e: Emit, node: Node, inputs: list[str]) -> tuple:
    """A conv2d's/dense's inputs plus the bias when the bias_add after it is its only
    reader (ONNX's Conv and Gemm take it as their third input), and that bias_add (a
    folded batchnorm's, when fold_batchnorm folded one)."""
    readers = e.graph.consumers.get(node.output, [])
    if len(readers) == 1 and e.graph.uses(node.output) == 1 and \
            ops.get(readers[0].op).adds_bias and readers[0].inputs[0] == node.output:
        e.absorbed[readers[0].name] = node.output
        return inputs + [e.weight(readers[0].inputs[1])], (readers[0],)
    return inputs, ()


def _conv2d(e: Emit, node: Node) -> None:
    w = e.params[node.inputs[1]]                       # HWIO -> OIHW
    inputs, also = _with_bias(e, node, [e.x(), e.weight(node.inputs[1],
                                                       w.transpose(3, 2, 0, 1), "/oihw")])
    e.define(e.op("Conv", inputs, node.output, also, group=1, **_window(node)))


def _dense(e: Emit, node: Node) -> None:
    # the (in, out) kernel is Gemm's B as it is
    inputs, also = _with_bias(e, node, [e.x(), e.weight(node.inputs[1])])
    e.define(e.op("Gemm", inputs, node.output, also))


def _bias_add(e: Emit, node: Node) -> None:
    if node.name in e.absorbed:                         # the Conv/Gemm before it added it
        e.define(e.names[e.absorbed[node.name]])
        return
    e.define(e.op("Add", [e.x(), e.channel(node.inputs[1], node.inputs[0])], node.output))


def _batchnorm(e: Emit, node: Node) -> None:
    """Not folded (fold_batchnorm refused): BatchNormalization with the moving statistics
    over axis 1 -- the channels of an NCHW image or the units of a flat (N, C) tensor."""
    params = [e.weight(v) for v in node.inputs[1:]]     # gamma, beta, mean, var
    e.define(e.op("BatchNormalization", [e.x()] + params, node.output,
                  epsilon=float(node.attrs["epsilon"])))


def _pool(op_type: str, **fixed):
    def emit(e: Emit, node: Node) -> None:
        e.define(e.op(op_type, [e.x()], node.output, **_window(node), **fixed))
    return emit


def _global_pool(op_type: str):
    def emit(e: Emit, node: Node) -> None:
        pooled = e.op(op_type, [e.x()])                  # (N, C, 1, 1)
        e.define(e.op("Flatten", [pooled], node.output, axis=1))
    return emit


def _to_nhwc(e: Emit, value: str) -> str:
    """IR value `value` as an NHWC tensor (a transpose of an NCHW image)."""
    if not e.image(value):
        return e.names[value]
    return e.op("Transpose", [e.names[value]], perm=[0, 2, 3, 1])


def _flatten(e: Emit, node: Node) -> None:
    """cnnc flattens in NHWC order: transpose the NCHW image back first."""
    e.define(e.op("Flatten", [_to_nhwc(e, node.inputs[0])], node.output, axis=1))


def _softmax(e: Emit, node: Node) -> None:
    """Over cnnc's last axis: the channels, axis 1 of an NCHW image."""
    e.define(e.op("Softmax", [e.x()], node.output, axis=1 if e.image(node.inputs[0]) else -1))


def _scalar(e: Emit, value: float) -> str:
    from onnx import numpy_helper
    name = f"const/{value!r}"
    if name not in e.initializers:
        e.initializers[name] = numpy_helper.from_array(np.array(value, np.float32), name)
    return name


def _gelu(e: Emit, node: Node) -> None:
    """The exact gelu, 0.5 * x * (1 + erf(x / sqrt(2))), from Erf (Gelu is opset 20)."""
    x = e.x()
    erf = e.op("Erf", [e.op("Mul", [x, _scalar(e, 1 / math.sqrt(2))])])
    half_x = e.op("Mul", [x, _scalar(e, 0.5)])
    e.define(e.op("Mul", [half_x, e.op("Add", [erf, _scalar(e, 1.0)])], node.output))


def _silu(e: Emit, node: Node) -> None:
    e.define(e.op("Mul", [e.x(), e.op("Sigmoid", [e.x()])], node.output))


def _add(e: Emit, node: Node) -> None:
    e.define(e.op("Add", [e.x(0), e.x(1)], node.output))


# One emitter per op that can appear in a graph at the export stage. Parameter-only ops
# with a numpy expression (fold_batchnorm's derived parameters) need none: they are
# evaluated in numpy (_derive). tests/export/test_onnx.py checks that every forward op of
# the op table is here or is named, with its reason, in its list of ops that never reach
# an exported graph.
EMITTERS: dict[str, Callable[[Emit, Node], None]] = {
    "conv2d": _conv2d,
    "dense": _dense,
    "bias_add": _bias_add,
    "batchnorm": _batchnorm,
    "maxpool2d": _pool("MaxPool"),
    "avgpool2d": _pool("AveragePool", count_include_pad=0),
    "global_avgpool2d": _global_pool("GlobalAveragePool"),
    "global_maxpool2d": _global_pool("GlobalMaxPool"),
    "flatten": _flatten,
    "dropout": _alias,
    "add": _add,
    # activations (cnnc's table, docs/language.md)
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "softmax": _softmax,
    "linear": _alias,
    "elu": _unary("Elu", alpha="alpha"),
    "leaky_relu": _unary("LeakyRelu", alpha="alpha"),
    "gelu": _gelu,
    "silu": _silu,
    "hard_sigmoid": _unary("HardSigmoid", alpha=1 / 6, beta=0.5),   # Keras 3's
}


def is_derived(node: Node) -> bool:
    """A parameter-only op computed once from the parameters (numpy `expr`, no kernel)."""
    op = ops.get(node.op)
    return op.template is None and op.expr is not None and not node.body


def _derive(node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    """A derived parameter, by the op table's numpy expression, float attributes as
    float32 constants: the computation of the generated module's `prepare`."""
    op = ops.get(node.op)
    env = {role: values[v] for role, v in zip(op.inputs, node.inputs)}
    env.update({k: np.float32(v) for k, v in node.attrs.items() if isinstance(v, float)})
    return np.asarray(eval(op.expr, {"np": np, "math": math}, env), dtype=np.float32)  # noqa: S307


def unsupported(node: Node, file: str) -> CnncError:
    where = f" (layer '{node.layer}')" if node.layer else ""
    return CnncError(Diagnostic(
        f"cannot export op '{node.op}'{where} to ONNX: the exporter has no emitter for it",
        file, node.loc, hint="cnnc/export/onnx.py: EMITTERS"))


# --- the model ------------------------------------------------------------------------------

def _graph_input(e: Emit, inp: str, layout: str) -> list:
    """Define the input's tensor (NCHW inside: transposed from NHWC unless the layout is
    nchw); returns the input's declared shape, batch dimension N dynamic."""
    h, w, c = e.graph.type(inp).shape
    e.names[inp] = inp
    if layout == "nchw":
        return ["N", c, h, w]
    e.node = Node("input", "transpose", (inp,), (inp,), layer="input")
    e.names[inp] = e.op("Transpose", [inp], f"{inp}/nchw", perm=[0, 3, 1, 2])
    return ["N", h, w, c]


def _graph_output(e: Emit, inp: str, out: str, layout: str) -> tuple[str, list]:
    """The output tensor (an image back to NHWC unless the layout is nchw) and its shape."""
    result = e.names[out]
    e.node = e.graph.producer(out) or Node("output", "identity", (out,), (out,),
                                           layer="output")
    shape = e.graph.type(out).shape
    if len(shape) == 3 and layout == "nhwc":
        result = e.op("Transpose", [result], f"{out}/nhwc", perm=[0, 2, 3, 1])
    elif len(shape) == 3:
        shape = (shape[2], shape[0], shape[1])
    if result == inp:                 # nothing computed (input-only, nchw): ONNX needs a node
        result = e.op("Identity", [result], f"{out}/output")
    return result, ["N", *shape]


def to_onnx(model, params: dict[str, np.ndarray], layout: str = "nhwc"):
    """`model` (a checked frontend Model) with `params` (Keras layouts, by name) as an
    onnx.ModelProto, checked and with its shapes inferred."""
    onnx = require_onnx()
    from onnx import TensorProto, helper
    if layout not in LAYOUTS:
        raise CnncError(Diagnostic(f"unknown layout '{layout}' (nhwc or nchw)"))
    graph = export_graph(model.graph)
    file = Path(model.file).name if getattr(model, "file", None) else "<string>"
    missing = [p.name for p in graph.params if p.name not in params]
    if missing:
        raise CnncError(Diagnostic(f"no value for parameter '{missing[0]}' of model "
                                   f"'{model.name}' ({len(missing)} missing)", file))
    values = {p.name: np.asarray(params[p.name], dtype=np.float32) for p in graph.params}
    e = Emit(graph, values, file)
    (inp,) = graph.inputs
    (out,) = graph.outputs
    in_shape = _graph_input(e, inp, layout)
    for node in graph.nodes:
        if is_derived(node):
            values[node.output] = _derive(node, values)
            continue
        emitter = EMITTERS.get(node.op)
        if emitter is None:
            raise unsupported(node, file)
        e.node = node
        emitter(e, node)
    result, out_shape = _graph_output(e, inp, out, layout)
    size = sum(len(t.raw_data) for t in e.initializers.values())
    if size > MAX_BYTES:
        raise CnncError(Diagnostic(
            f"model '{model.name}' has {size / 2**30:.1f} GiB of weights: more than one ONNX "
            f"file holds (protobuf's 2 GiB limit)", file))
    onnx_graph = helper.make_graph(
        e.nodes, model.name,
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(result, TensorProto.FLOAT, out_shape)],
        initializer=list(e.initializers.values()),
        doc_string=f"cnnc model '{model.name}' from {file}, layout {layout}")
    proto = helper.make_model(
        onnx_graph, producer_name="cnnc", producer_version=__version__,
        ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=f"{model.name} ({file}), exported by cnnc {__version__}: "
                   f"input {layout.upper()} float32, dynamic batch")
    helper.set_model_props(proto, {"cnnc.layout": layout, "cnnc.source": file})
    onnx.checker.check_model(proto, full_check=True)
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    return proto


def export_onnx(model, params: dict[str, np.ndarray], path, layout: str = "nhwc"):
    """Write `model` with `params` to `path` as ONNX (atomically); returns the ModelProto.
    `path` may not be the model's own source file."""
    from ..util import atomic_write_bytes, check_output
    source = getattr(model, "file", None)
    check_output(path, inputs=[source] if source and source != "<string>" else [])
    proto = to_onnx(model, params, layout)
    atomic_write_bytes(path, proto.SerializeToString())
    return proto
