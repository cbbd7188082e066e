"""Building graphs node by node, with shape inference as each node is added."""

from __future__ import annotations

from ..errors import Loc
from . import ops
from .graph import ACTIVATION, PARAM, STATE, Attrs, Graph, Node, Param, TensorType, Value


class GraphBuilder:
    def __init__(self):
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.params: list[Param] = []
        self.inputs: list[str] = []

    def input(self, name: str, type: TensorType, role: str) -> str:
        self._define(Value(name, type, role))
        self.inputs.append(name)
        return name

    def param(self, layer: str, spec: ops.ParamSpec) -> str:
        name = f"{layer}/{spec.name}"
        self.params.append(Param(name, spec.shape, spec.init, layer, spec.trainable, spec.fans))
        self._define(Value(name, TensorType(spec.shape, batched=False),
                           PARAM if spec.trainable else STATE))
        return name

    def node(self, op: str, inputs: list[str], attrs: dict | Attrs | None = None, *,
             layer: str, loc: Loc | None = None, name: str | None = None,
             out_type: TensorType | None = None, role: str = ACTIVATION) -> str:
        """Add a node; its output type is inferred by the op's shape rule (ShapeError)."""
        attrs = attrs if isinstance(attrs, Attrs) else Attrs(attrs or {})
        if out_type is None:
            out_type = ops.get(op).infer(attrs, [self.values[i].type for i in inputs])
        name = self._unique(name or layer)
        self._define(Value(name, out_type, role))
        self.nodes.append(Node(name, op, tuple(inputs), (name,), attrs, layer, loc))
        return name

    def multi(self, op: str, inputs: list[str], attrs, out_types: list[TensorType], *,
              layer: str, loc: Loc | None = None, name: str,
              suffixes: list[str] | None = None) -> list[str]:
        """A node with several outputs: `name`, then `name:suffix` for the others."""
        attrs = attrs if isinstance(attrs, Attrs) else Attrs(attrs or {})
        name = self._unique(name)
        suffixes = suffixes or [str(i) for i in range(1, len(out_types))]
        outs = [name] + [f"{name}:{s}" for s in suffixes]
        for out, t in zip(outs, out_types):
            self._define(Value(out, t, ACTIVATION if t.batched else "grad"))
        self.nodes.append(Node(name, op, tuple(inputs), tuple(outs), attrs, layer, loc))
        return outs

    def type(self, value: str) -> TensorType:
        return self.values[value].type

    def build(self, outputs: list[str]) -> Graph:
        return Graph(self.values, tuple(self.nodes), tuple(self.inputs), tuple(outputs),
                     tuple(self.params))

    def _unique(self, name: str) -> str:
        if name not in self.values:
            return name
        i = 1
        while f"{name}_{i}" in self.values:
            i += 1
        return f"{name}_{i}"

    def _define(self, value: Value) -> None:
        assert value.name not in self.values, value.name
        self.values[value.name] = value
