"""Kernel groups: the unit of code generation.

A group is one IR node, or a fused node with the nodes it replaced. Every group has the
same shape, which the templates rely on::

    [anchor]  ->  pre*  ->  [reducer  ->  post*]

* anchor   the node that sets the loop structure: a complex op (conv2d, dense), a
           reduction (pooling, softmax), or nothing for a purely elementwise group
* pre      elementwise/broadcast nodes applied to each anchor output element
* reducer  a window reduction (pooling) or a row reduction (softmax) over `pre` results,
           computed inside the anchor's loops (the pre-reduction tensor is never stored)
* post     elementwise/broadcast nodes applied to each reduced element

The code generator asks the anchor's template to render the loops and splices the chains
into it; this module only decides which node plays which part and names the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import ops
from ..ir.graph import Graph, Node
from .exprs import Splice, f32, substitute
from .naming import Namer


@dataclass
class Group:
    node: Node                       # the graph node (fused or not)
    nodes: tuple[Node, ...]          # the IR nodes it computes, in order
    anchor: Node | None
    pre: tuple[Node, ...]
    reducer: Node | None
    post: tuple[Node, ...]
    args: dict[str, str] = field(default_factory=dict)   # external value -> local arg name

    @property
    def template(self) -> str:
        if self.anchor is None:
            return "elementwise"
        return ops.get(self.anchor.op).template

    @property
    def output(self) -> str:
        return self.node.outputs[0] if self.node.outputs else ""

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.args)

    @property
    def backward(self) -> bool:
        """Whether it computes gradients (its output is named dx, its input gradient dy)."""
        return any(ops.get(n.op).direction == ops.BACKWARD for n in self.nodes)

    def op_tags(self) -> list[str]:
        return [ops.get(n.op).short for n in self.nodes if not ops.get(n.op).view]

    def function_name(self) -> tuple[str, str]:
        """(stem, suffix) of its name: the ops it computes and a direction --
        conv2d_bias_relu + _fwd, dense_grad_input_relu_grad + _bwd, adam + _update(_all),
        softmax_xent + _loss."""
        first = ops.get(self.nodes[0].op)
        if first.stem is not None:
            suffix = first.direction + ("_all" if len(self.nodes) > 1 else "")
            return first.stem(self.nodes[0].attrs), suffix
        return "_".join(self.op_tags()), (ops.BACKWARD if self.backward else ops.FORWARD)

    @property
    def out_name(self) -> str:
        """The kernel's name for its output: the anchor's own (dw, db), else dx in a
        backward kernel and y in a forward one."""
        if self.anchor is not None and ops.get(self.anchor.op).out:
            return ops.get(self.anchor.op).out
        return "dx" if self.backward else "y"


def analyze(node: Node, graph: Graph) -> Group:
    body = node.body or (node,)
    if node.rule in ("updates", "siblings"):
        # horizontal: every update of a step; a weight gradient and the channel sum of dy
        # its kernel computes alongside (the group's second output)
        group = Group(node, tuple(body), body[0], (), None, ())
        _name_args(group, graph)
        return group
    anchor = None
    pre: list[Node] = []
    reducer = None
    post: list[Node] = []
    for i, member in enumerate(body):
        op = ops.get(member.op)
        chainable = op.chainable or op.view
        if i == 0 and not chainable:
            anchor = member
        elif chainable:
            (post if reducer is not None else pre).append(member)
        elif reducer is None and anchor is not None and op.reduction is not None:
            reducer = member
        else:
            raise AssertionError(f"group {node.name}: {member.op} cannot follow "
                                 f"{[b.op for b in body[:i]]}")
    group = Group(node, tuple(body), anchor, tuple(pre), reducer, tuple(post))
    if anchor is not None and (pre or reducer) and \
            ops.get(anchor.op).epilogue_refusal(anchor.attrs):
        raise AssertionError(f"{anchor.op}'s template takes no epilogue ({node.name})")
    _name_args(group, graph)
    return group


def _name_args(group: Group, graph: Graph) -> None:
    """Local names for the group's external inputs by their roles: x (dy in a backward
    kernel), w (wt when packed: see pack_kernels), then the epilogue's b, gamma, ..."""
    internal = {out for n in group.nodes for out in n.outputs}
    namer = Namer(RESERVED | {group.out_name})
    for member in group.nodes:
        op = ops.get(member.op)
        for role, value in zip(op.inputs, member.inputs):
            if value in internal or value in group.args:
                continue
            if role == "w" and "kernel_layout" in member.attrs:
                role = "wt"
            group.args[value] = namer(role)


# Names the templates use for their own locals; arguments and chain locals avoid them
# (and the output's name, Group.out_name).
RESERVED = frozenset("""
    n t i j q r s c co ci oh ow ih iw ph pw pr ps h w_in cin cout out_h out_w pool_h pool_w
    n_batch n_in n_out blk n0 rows acc patch taps base pooled top left rows_in scale total
    u0 u1 u2 u3 v0 v1 v2 v3 dx dgamma dbeta loss correct dz g_i partial chunk chunks
    positions patch_t dy_t x_t y2 part inv_std inv_rows label best lse dot width index
    global_index p j0 jj cols n_panels n_blocks i0 dy_p stack_tile _stack_tile tile ow0
    inv x2 e v ch h0 w0 cols_in h_lo h_hi w_lo w_hi channels ZERO ONE FASTMATH PARALLEL np math
    prange njit g d a rest share wk dropout_keep mix32 mul32 config types cgutils intrinsic
    element_hash _element_hash llvm_ir where here
    make_array populate_array ju sums oh0 ow0 c0 n_row_blocks hp wp cs rows_t offs bases dy4
    sample xs t0 rs dw2 half p0 p1 x3 rf col_step firsts reshaped _reshaped aligned_empty
    aligned_zeros _aligned_empty _aligned_zeros HEAP_ALIGN _heap_array_type _heap_codegen
    _array_struct _shape_ndim _dims _c_array
    """.split()) | {f"x{r}{s}" for r in range(10) for s in range(10)} \
    | {f"x{r}_{s}" for r in range(32) for s in range(32)} \
    | {f"a{i}" for i in range(16)} | {f"row{i}" for i in range(16)} \
    | {f"o{i}" for i in range(16)}                                    # window taps, GEMM rows


class Chain:
    """Renders elementwise nodes as assignments to locals, splicing them into a kernel.

    Nodes run in order; a node reads the locals of earlier nodes of the same chain (so a
    diamond -- `add(relu(v), v)` -- renders as plain assignments), the chain's start value,
    or an argument of the kernel indexed like the output element.
    """

    def __init__(self, group: Group, graph: Graph):
        self.group = group
        self.graph = graph
        self.namer = Namer(RESERVED | set(group.args.values()) | {group.out_name})

    def render(self, nodes, value: str | None, start: str | None, full: str,
               channel: str, index: str | None = None) -> Splice:
        """Apply `nodes` to `start`, the code of the element of `value` (None: no start).

        `full` indexes a tensor shaped like the output element (e.g. "[n, oh, ow, k]"),
        `channel` a per-channel vector (e.g. "[k]"), `index` is the element's flat index
        (for counter-based dropout masks: IDX in an op's expression; for an op that
        reads `first`, the index of the batch's first sample in a global batch, IDX is
        the element's index in the global batch). Scalar arguments are read as they are.
        """
        lines: list[str] = []
        known = {value: start} if value is not None else {}
        current = start
        for node in nodes:
            op = ops.get(node.op)
            if op.view:
                known[node.output] = known.get(node.inputs[0], current)
                continue
            names = {}
            for role, arg in zip(op.inputs, node.inputs):
                if arg in known:
                    names[role] = known[arg]
                elif self.graph.type(arg).shape == () and not self.graph.type(arg).batched:
                    names[role] = self.group.args[arg]
                else:
                    where = channel if role in op.channel_inputs else full
                    names[role] = f"{self.group.args[arg]}{where}"
            for key, attr in node.attrs.items():
                if isinstance(attr, bool):
                    continue
                if isinstance(attr, int):
                    names[key] = str(attr)
                elif isinstance(attr, float):
                    names[key] = f32(attr)
            if "IDX" in op.expr:
                assert index is not None, f"{node.op} needs the element index"
                if "first" in op.inputs:
                    # in a batch that starts at sample `first` of a global batch: the
                    # element's index in the global batch
                    if "global_index" not in known:
                        size = self.graph.type(node.output).numel
                        lines.append(f"global_index = {names['first']} * {size} + {index}")
                        known["global_index"] = "global_index"
                    names["IDX"] = "global_index"
                else:
                    if "index" not in known:
                        lines.append(f"index = {index}")
                        known["index"] = "index"
                    names["IDX"] = "index"
            var = self.namer(op.short)
            lines.append(f"{var} = {substitute(op.expr, names)}")
            known[node.output] = var
            current = var
        return Splice("\n".join(lines), current)
