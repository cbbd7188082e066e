"""verify: check a graph's invariants (run after every pass in tests and with --debug).

Single assignment; every input defined before it is read; every op known and every
category from the vocabulary; shapes of plain nodes agree with their op's shape rule;
fused nodes hold a well-formed body whose external inputs are the node's inputs.
"""

from __future__ import annotations

from ..ir import ops
from ..ir.graph import Graph


class VerifyError(AssertionError):
    pass


def verify(graph: Graph, after: str = "") -> None:
    where = f" (after {after})" if after else ""
    defined = set(graph.inputs) | {p.name for p in graph.params}
    for name in defined:
        if name not in graph.values:
            raise VerifyError(f"{name} has no value{where}")
    for node in graph.nodes:
        if node.op not in ops.OPS:
            raise VerifyError(f"unknown op {node.op}{where}")
        for value in node.inputs:
            if value not in defined:
                raise VerifyError(f"{node.name} reads {value} before it is defined{where}")
        for value in node.outputs:
            if value in defined:
                raise VerifyError(f"{value} is assigned twice{where}")
            if value not in graph.values:
                raise VerifyError(f"{node.name} defines {value} with no type{where}")
            defined.add(value)
        if node.body:
            _verify_body(graph, node, where)
        elif node.op != "fused" and len(node.outputs) == 1:
            _verify_shape(graph, node, where)
    for value in graph.outputs:
        if value not in defined:
            raise VerifyError(f"output {value} is never defined{where}")


def _verify_shape(graph: Graph, node, where: str) -> None:
    op = ops.get(node.op)
    types = [graph.type(v) for v in node.inputs]
    if "kernel_layout" in node.attrs:
        # a packed kernel (pack_kernels): the op's shape rule reads the kernel it packs
        pack = graph.producer(node.inputs[1])
        if pack is not None:
            types[1] = graph.type(pack.inputs[0])
    inferred = op.infer(node.attrs, types)
    actual = graph.type(node.output)
    if inferred.shape != actual.shape:
        raise VerifyError(f"{node.name}: shape {actual} but {node.op} infers {inferred}{where}")


def _verify_body(graph: Graph, node, where: str) -> None:
    internal = set()
    external = []
    for member in node.body:
        for value in member.inputs:
            if value not in internal and value not in external:
                external.append(value)
        internal.update(member.outputs)
        if ops.get(member.op).category not in ops.CATEGORIES:
            raise VerifyError(f"{member.name}: bad category{where}")
    if tuple(external) != node.inputs:
        raise VerifyError(f"{node.name}: inputs {node.inputs} but body reads {external}{where}")
    if node.rule == "updates":
        return
    if node.rule == "siblings":
        # horizontal: the members read the same input; the node defines each one's output
        outputs = tuple(v for member in node.body for v in member.outputs)
        if outputs != node.outputs:
            raise VerifyError(f"{node.name}: outputs {node.outputs} but body defines "
                              f"{outputs}{where}")
        if internal & set(external):
            raise VerifyError(f"{node.name}: a sibling reads another's output{where}")
        return
    if node.body[-1].outputs[0] != node.outputs[0]:
        raise VerifyError(f"{node.name}: output is not the body's last value{where}")
    side = tuple(v for member in node.body for v in member.outputs[1:])
    if node.outputs[1:] != side:
        raise VerifyError(f"{node.name}: outputs {node.outputs} but the body's other "
                          f"outputs are {side}{where}")
