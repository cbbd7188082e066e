"""pack_kernels: choose the layout each conv2d/dense kernel is read in (op.packed).

    x -> conv2d(w: HWIO)   =>   x -> conv2d(pack_conv_panels(w): (out / 32, kh*kw*in, 32))
                                                     cin > 1; panels of 16 for <= 16 out
    x -> dense(w: (in, out)) => x -> dense(pack_panels(w): (out / 32, in, 32))
    dy -> dense_grad_input(w) => dy -> dense_grad_input(pack_panels_t(w): (in / 32, out, 32))
    dy -> conv2d_grad_input(w) => dy -> conv2d_grad_input(pack_ihwo(w): (in, kh*kw*out))

Why: the CPU conv and dense kernels are GEMMs with register tiles (the convolution an
implicit one, over each output row's patches): a panel of 32 (or 16) columns of their
kernel, contiguous, is the operand they load a vector row of at every step of the
reduction (templates/cpu/conv2d.j2, dense.j2). conv2d_grad_input still computes dot
products over the reduction axis, contiguous in both operands. The packed kernel is a
derived parameter (computed once per parameter set), so the model's parameters keep
their Keras layouts. A conv2d with one input channel keeps HWIO: its kernel vectorizes
over output channels or columns instead.
The layout is recorded on the node as `kernel_layout`.

It runs for targets whose kernels are such dot products (Target.packs_kernels: the
CPU). The CUDA kernels stage tiles of the kernel in shared memory, and a tile of the
Keras layout -- HWIO viewed as (kh*kw*in, out), dense (in, out) -- loads with
consecutive threads on consecutive addresses as it is: nothing to do there.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import DERIVED, Graph, Node, Value
from .rewrite import rebuild


def run(graph: Graph, ctx) -> Graph:
    if not ctx.pack:
        return graph
    nodes: list[Node] = []
    extra: dict[str, Value] = {}
    for node in graph.nodes:
        packed = ops.get(node.op).packed
        if packed is None or not packed.applies(graph.type(node.inputs[0])):
            nodes.append(node)
            continue
        w = node.inputs[1]
        value = f"{w}:{packed.layout}"
        if value not in extra:
            out_type = ops.get(packed.op).infer(node.attrs, [graph.type(w)])
            extra[value] = Value(value, out_type, DERIVED)
            nodes.append(Node(value, packed.op, (w,), (value,), layer=node.layer,
                              loc=node.loc))
        nodes.append(node.with_(inputs=(node.inputs[0], value) + node.inputs[2:],
                                attrs=node.attrs.updated(kernel_layout=packed.layout)))
    return rebuild(graph, nodes, extra)
