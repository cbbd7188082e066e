"""pool_codes: a training step's max pooling saves where each window's maximum is.

    x -> maxpool2d -> y               =>   x -> maxpool2d_code -> (y, code)
    maxpool2d_grad(dy, x)             =>   maxpool2d_grad_code(dy, code)
    relu_grad(maxpool2d_grad(dy, x), x)
                                      =>   maxpool2d_grad_code(dy, code, relu=True)

The gradient of max pooling routes each window's gradient to the window's first maximum,
which maxpool2d_grad finds again from the saved input: mnist_cnn's step read its 11 MB
back for that. The forward kernel already compares the window's values; it now also
writes one byte per output element (ir/ops/pool.py: the maximum's index in the window,
and whether it is above zero), and the gradient reads the bytes instead of the input.
A relu gradient reading the same input (conv -> relu -> maxpool: it keeps the gradient
where the input is above zero, and the pooling gradient is zero but at the maximum) folds
into the pooling gradient: the byte says whether the maximum is above zero. The same
numbers, bit for bit.

It applies where windows tile the input (no overlap, no padding: each position lies in
at most one window, as the gradient's gather template requires) and hold at most 127
positions. It runs for targets whose kernels are the CPU's (`ctx.pack`, as for
pack_kernels): the CUDA templates keep reading the input.
"""

from __future__ import annotations

from ..ir.graph import Graph, TensorType, Value
from ..ir.ops.pool import CODE_WINDOW_LIMIT, POOL_WINDOW
from .rewrite import rebuild

# op -> (its form with codes, its gradient, its gradient from codes)
CODED = {"maxpool2d": ("maxpool2d_code", "maxpool2d_grad", "maxpool2d_grad_code")}
# gradients of an elementwise op that keep dy where the saved input is above zero and
# zero elsewhere: they fold into the pooling gradient from codes
POSITIVE_MASKS = ("relu_grad",)


def run(graph: Graph, ctx) -> Graph:
    if not ctx.pack:
        return graph
    replaced: dict[str, object] = {}          # node name -> its replacement (None: dropped)
    extra: dict[str, Value] = {}
    grads = {name for _, name, _ in CODED.values()}
    for grad in graph.nodes:
        if grad.op not in grads:
            continue
        dy, x = grad.inputs
        pool = next((n for n in graph.consumers.get(x, ()) if n.op in CODED
                     and CODED[n.op][1] == grad.op and _same_window(n, grad)), None)
        if pool is None or pool.name in replaced:
            continue
        if not POOL_WINDOW.tiles(pool.attrs):
            ctx.note("pool_codes", f"'{pool.name}' keeps its input for the gradient: "
                                   f"its windows overlap or are padded")
            continue
        (kh, kw), _, _ = POOL_WINDOW.geometry(pool.attrs)
        if kh * kw > CODE_WINDOW_LIMIT:
            continue
        coded, _, coded_grad = CODED[pool.op]
        code = f"{pool.output}:code"
        extra[code] = Value(code, TensorType(graph.type(pool.output).shape, dtype="uint8"))
        replaced[pool.name] = pool.with_(op=coded, outputs=(pool.output, code))
        readers = graph.consumers.get(grad.output, [])
        mask = readers[0] if len(readers) == 1 and graph.uses(grad.output) == 1 and \
            readers[0].op in POSITIVE_MASKS and readers[0].inputs == (grad.output, x) \
            else None
        out = mask.output if mask is not None else grad.output
        replaced[grad.name] = grad.with_(op=coded_grad, inputs=(dy, code), outputs=(out,),
                                         attrs=grad.attrs.updated(relu=mask is not None))
        if mask is not None:
            replaced[mask.name] = None
        ctx.note("pool_codes", f"'{pool.name}' saves the codes of its maxima"
                               + (f"; '{mask.name}' folded into its gradient" if mask else ""))
    if not replaced:
        return graph
    nodes = [replaced.get(n.name, n) for n in graph.nodes]
    return rebuild(graph, [n for n in nodes if n is not None], extra)


def _same_window(pool, grad) -> bool:
    return all(pool.attrs[a] == grad.attrs[a] for a in ("pool", "strides", "padding"))
