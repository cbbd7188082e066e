"""The IR: a graph of values with static shapes and nodes that compute them.

* A :class:`Value` is a tensor with a static :class:`TensorType`. Activations are batched:
  their shape leaves out the batch dimension, which stays symbolic until run time.
* A :class:`Node` applies one op of the op table (:mod:`cnnc.ir.ops`) to input values and
  defines its output values (single assignment). It remembers the DSL layer and the source
  position it came from; a fused node also remembers the nodes it replaced (`body`).
* A :class:`Param` is a trainable or state tensor addressed as ``"<layer>/<param>"`` in
  Keras layouts (conv kernel HWIO, dense kernel (in, out)).

Nodes and values are immutable; passes build a new :class:`Graph` rather than edit one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from ..errors import Loc


class Attrs(Mapping):
    """An immutable, ordered attribute mapping (node attributes)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None, **kwargs):
        merged = dict(items or {}, **kwargs)
        self._items = tuple(merged.items())

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"

    def updated(self, **changes) -> "Attrs":
        return Attrs(dict(self._items, **changes))


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    batched: bool = True
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        """Elements per sample (batched) or in all (unbatched)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * (4 if self.dtype in ("float32", "int32") else 1
                             if self.dtype in ("int8", "uint8") else 8)

    def full_shape(self, batch: int | str = "N") -> tuple:
        return ((batch,) if self.batched else ()) + self.shape

    def __str__(self) -> str:
        dims = ("None",) if self.batched else ()
        return "(" + ", ".join(str(d) for d in dims + self.shape) + \
            ("," if len(dims + self.shape) == 1 else "") + ")"


# The roles a value can play. A `derived` value is computed from parameters alone (folded
# batchnorm, packed kernels): once per parameter set, not per batch.
INPUT, LABEL, PARAM, STATE, ACTIVATION, GRAD, SCALAR, DERIVED = (
    "input", "label", "param", "state", "activation", "grad", "scalar", "derived")
PARAMETER_ROLES = (PARAM, STATE, DERIVED)


@dataclass(frozen=True)
class Value:
    name: str
    type: TensorType
    role: str = ACTIVATION


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Attrs = field(default_factory=Attrs)
    layer: str = ""
    loc: Loc | None = None
    body: tuple["Node", ...] = ()     # for a fused node: the nodes it replaced, in order
    rule: str | None = None           # for a fused node: the fusion rule that formed it

    @property
    def output(self) -> str:
        assert len(self.outputs) == 1, self
        return self.outputs[0]

    def with_(self, **changes) -> "Node":
        return replace(self, **changes)


@dataclass(frozen=True)
class Param:
    """A parameter tensor: trainable (kernel, bias, gamma, beta) or state (moving stats)."""

    name: str
    shape: tuple[int, ...]
    init: str                     # glorot_uniform | zeros | ones
    layer: str
    trainable: bool = True
    fans: tuple[int, int] = (0, 0)  # (fan_in, fan_out) for glorot_uniform

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Graph:
    """A topologically ordered, single-assignment graph."""

    def __init__(self, values: Mapping[str, Value], nodes: tuple[Node, ...],
                 inputs: tuple[str, ...], outputs: tuple[str, ...],
                 params: tuple[Param, ...] = ()):
        self.values = dict(values)
        self.nodes = tuple(nodes)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.params = tuple(params)

    def replace(self, **changes) -> "Graph":
        kw = dict(values=self.values, nodes=self.nodes, inputs=self.inputs,
                  outputs=self.outputs, params=self.params)
        kw.update(changes)
        return Graph(**kw)

    @cached_property
    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs}

    @cached_property
    def consumers(self) -> dict[str, list[Node]]:
        """value -> the nodes reading it, each once (however many of its inputs it is)."""
        uses: dict[str, list[Node]] = {name: [] for name in self.values}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                uses.setdefault(name, []).append(node)
        return uses

    def producer(self, value: str) -> Node | None:
        return self.producers.get(value)

    def uses(self, value: str) -> int:
        """How many times `value` is read (a graph output counts as a use)."""
        return sum(n.inputs.count(value) for n in self.consumers.get(value, ())) + \
            self.outputs.count(value)

    @cached_property
    def by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    def node(self, name: str) -> Node:
        return self.by_name[name]

    def type(self, value: str) -> TensorType:
        return self.values[value].type

    @cached_property
    def param_by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    def __repr__(self) -> str:
        return format_graph(self)


def format_graph(graph: Graph) -> str:
    """A readable listing, one node a line (used by --dump-ir and in tests)."""
    lines = [f"graph({', '.join(f'{v}: {graph.type(v)}' for v in graph.inputs)}) {{"]
    for node in graph.nodes:
        outs = ", ".join(f"%{o}: {graph.type(o)}" for o in node.outputs)
        args = ", ".join(f"%{i}" for i in node.inputs)
        attrs = "".join(f", {k}={v!r}" for k, v in node.attrs.items())
        fused = f"  # fused[{node.rule}]: " + " + ".join(b.op for b in node.body) \
            if node.body else ""
        lines.append(f"  {outs} = {node.op}({args}{attrs}){fused}")
    lines.append("  return " + ", ".join(f"%{o}" for o in graph.outputs))
    lines.append("}")
    return "\n".join(lines)
