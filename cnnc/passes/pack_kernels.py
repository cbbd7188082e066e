"""pack_kernels: choose the layout each conv2d/dense kernel is read in.

    x -> conv2d(w: HWIO)   =>   x -> conv2d(pack_ohwi(w): (out, kh*kw*in))    cin > 1
    x -> dense(w: (in, out)) => x -> dense(transpose_kernel(w): (out, in))
    dy -> conv2d_grad_input(w) => dy -> conv2d_grad_input(pack_ihwo(w): (in, kh*kw*out))

Why: the CPU kernels compute each output as a dot product over the reduction axis; with
the reduction contiguous in both operands the inner loop vectorizes and a block of
outputs shares every load. The packed kernel is a derived parameter (computed once per
parameter set), so the model's parameters keep their Keras layouts. A conv2d with one
input channel keeps HWIO: its kernel vectorizes over output columns instead.
The layout is recorded on the node as `kernel_layout`.

On the CUDA target the pass changes nothing: the CUDA kernels stage tiles of the kernel
in shared memory, and a tile of the Keras layout -- HWIO viewed as (kh*kw*in, out), dense
(in, out) -- loads with consecutive threads on consecutive addresses as it is.
"""

from __future__ import annotations

from ..ir.graph import DERIVED, Graph, Node, Value
from ..ir import ops
from .rewrite import rebuild


def run(graph: Graph, ctx) -> Graph:
    if getattr(ctx, "target", "cpu") != "cpu":
        return graph
    nodes: list[Node] = []
    extra: dict[str, Value] = {}
    for node in graph.nodes:
        if node.op == "conv2d" and graph.type(node.inputs[0]).shape[-1] > 1:
            layout, pack = "ohwi", "pack_ohwi"
        elif node.op == "dense":
            layout, pack = "oi", "transpose_kernel"
        elif node.op == "conv2d_grad_input":
            layout, pack = "ihwo", "pack_ihwo"
        else:
            nodes.append(node)
            continue
        w = node.inputs[1]
        packed = f"{w}:{layout}"
        if packed not in extra:
            out_type = ops.get(pack).infer(node.attrs, [graph.type(w)])
            extra[packed] = Value(packed, out_type, DERIVED)
            nodes.append(Node(packed, pack, (w,), (packed,), layer=node.layer, loc=node.loc))
        nodes.append(node.with_(inputs=(node.inputs[0], packed) + node.inputs[2:],
                                attrs=node.attrs.updated(kernel_layout=layout)))
    return rebuild(graph, nodes, extra)
