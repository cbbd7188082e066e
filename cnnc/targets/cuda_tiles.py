"""The CUDA target's part of kernel contexts: tile shapes, launch geometry and comments.

The kernel groups, argument lists and epilogue chains are every target's (kernels.py
builds them); this module adds what the templates in `templates/cuda/` need on top:

* matrix-product kernels (conv2d, its two gradients, dense, dense_grad_weight) are tiled
  GEMMs -- a block computes a BM x BN tile of the output, each thread a TM x TN register
  tile, the operands staged through shared memory BK columns of the reduction at a time.
  The tile is chosen from the static shapes: BN from the output channels, BM from the
  rows a sample contributes, BK from the reduction length;
* row kernels (softmax, a dense layer with its softmax, softmax_grad) run one block per
  row, with a thread count chosen from the row length;
* everything else runs one thread per output element (or per row or channel), in blocks
  of ELEMENT_THREADS.

Nothing here depends on the GPU the module will run on: the same source runs on any
device of compute capability 7.5 or newer (sizes are read from the arrays at run time;
only window geometry and tile shapes are literals).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..codegen.kernels import Kernel
from ..ir.graph import Graph

ELEMENT_THREADS = 256


def pow2ceil(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@dataclass(frozen=True)
class Tile:
    bm: int          # tile rows (output positions / samples)
    bn: int          # tile columns (output channels / units)
    bk: int          # reduction columns staged per step
    tm: int          # rows per thread
    tn: int          # columns per thread

    @property
    def tx(self) -> int:
        return self.bn // self.tn

    @property
    def ty(self) -> int:
        return self.bm // self.tm

    @property
    def threads(self) -> int:
        return self.tx * self.ty

    @property
    def a_loads(self) -> int:
        """A-tile elements each thread loads (rows of a fixed column)."""
        return self.bm * self.bk // self.threads

    def __post_init__(self):
        assert self.bn % self.tn == 0 and self.bm % self.tm == 0, self
        assert self.threads % self.bk == 0 and (self.bm * self.bk) % self.threads == 0, self
        assert self.threads <= 1024, self

    def describe(self) -> str:
        return (f"{self.bm}x{self.bn} output tiles per block of {self.tx}x{self.ty} threads, "
                f"{self.tm}x{self.tn} outputs a thread in registers, the operands staged "
                f"through shared memory {self.bk} reduction steps at a time")


def _columns(cols: int) -> tuple[int, int]:
    """(BN, TN) for `cols` output columns: the tile width with the least padding
    (wider on ties), 8 to 64 columns."""
    if cols <= 8:
        bn = 8
    elif cols < 64:
        bn = pow2ceil(cols)
    else:
        bn = min((64, 32), key=lambda b: (-cols % b, -b))
    return bn, {8: 1, 16: 2, 32: 4, 64: 4}[bn]


def gemm_tile(rows: int, cols: int, depth: int) -> Tile:
    """The tile of a GEMM with about `rows` rows per sample (or per batch when that is
    unknown), `cols` columns and a reduction of `depth`."""
    bn, tn = _columns(cols)
    bm = 64 if rows >= 64 else max(16, pow2ceil(rows))
    tm = 4 if bm == 64 else 2
    bk = 16 if depth >= 16 else max(4, pow2ceil(depth))
    while (bm // tm) * (bn // tn) < bk:           # at least one thread per A-tile column
        tm //= 2
    return Tile(bm, bn, bk, tm, tn)


def row_threads(width: int) -> int:
    """Threads of a block that reduces one row of `width` elements."""
    return min(256, max(2, pow2ceil(width)))


def extend(kernel: Kernel, graph: Graph) -> None:
    """Add the CUDA context of `kernel` (tiles, launch geometry, loop comments)."""
    kernel.context.threads = ELEMENT_THREADS
    EXTENSIONS[kernel.template](kernel, graph)


def _shape(graph: Graph, value: str) -> tuple:
    return tuple(graph.type(value).shape)


def _conv2d(kernel: Kernel, graph: Graph) -> None:
    ctx, group = kernel.context, kernel.group
    conv = group.anchor
    x_shape = _shape(graph, conv.inputs[0])
    out = _shape(graph, group.output)
    taps = ctx.kh * ctx.kw * x_shape[-1]
    ctx.tile = gemm_tile(out[0] * out[1], out[-1], taps)
    pooled = (" Rows are pooled outputs: the tile is computed once per pool tap and pooled "
              "in registers; the convolution output is never written.") if ctx.pool else ""
    ctx.loops = ["Implicit GEMM over (output positions) x (output channels), reduction over "
                 f"the {ctx.kh}x{ctx.kw}x{x_shape[-1]} patch: {ctx.tile.describe()}. The "
                 "epilogue runs on the register tile; y is written once." + pooled]


def _conv2d_grad_input(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    dx = _shape(graph, kernel.group.output)
    dy = _shape(graph, kernel.group.anchor.inputs[0])
    ctx.tile = gemm_tile(dx[0] * dx[1], dx[-1], ctx.kh * ctx.kw * dy[-1])
    ctx.loops = ["Implicit GEMM over (input positions) x (input channels), reduction over "
                 "the taps and output channels whose window covers the position (dy "
                 f"gathered into the A tile, zeros elsewhere): {ctx.tile.describe()}. The "
                 "epilogue runs on the register tile; dx is written once."]


def _conv2d_grad_weight(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    x = _shape(graph, kernel.group.anchor.inputs[0])
    dy = _shape(graph, kernel.group.anchor.inputs[1])
    ctx.tile = gemm_tile(ctx.kh * ctx.kw * x[-1] + (1 if ctx.db else 0), dy[-1], 1 << 20)
    ones = " and a row of ones, whose sums are db," if ctx.db else ""
    ctx.loops = [f"GEMM over (taps{ones}) x (output channels), reduction over the batch's "
                 "output positions split into slices summed by separate blocks (then added "
                 f"in slice order: the same sums on any GPU): {ctx.tile.describe()}."]


def _dense(kernel: Kernel, graph: Graph) -> None:
    ctx, group = kernel.context, kernel.group
    # The finishing kernel takes the epilogue's arguments, and the GEMM's operands only
    # when the epilogue reads them (a residual add of the layer's input).
    operands = {group.args[v] for v in group.anchor.inputs}
    read = {group.args[v] for n in group.pre + group.post for v in n.inputs if v in group.args}
    ctx.finish_skip = operands - read
    n_in = _shape(graph, group.anchor.inputs[0])[-1]
    n_out = _shape(graph, group.anchor.output)[-1]
    ctx.tile = gemm_tile(64, n_out, n_in)
    ctx.row_threads = row_threads(n_out)
    finish = (f"one block of {ctx.row_threads} threads per row adds the slices, applies "
              "the epilogue and the softmax over the row" if ctx.row else
              "one thread per output adds the slices and applies the epilogue")
    ctx.loops = [f"GEMM over (samples) x (units), reduction over inputs split into slices "
                 f"when that fills the GPU better: {ctx.tile.describe()}; then {finish}."]


def _dense_grad_weight(kernel: Kernel, graph: Graph) -> None:
    ctx, group = kernel.context, kernel.group
    n_in = _shape(graph, group.anchor.inputs[0])[-1]
    n_out = _shape(graph, group.anchor.inputs[1])[-1]
    ctx.tile = gemm_tile(n_in + (1 if ctx.db else 0), n_out, 1 << 20)
    ones = " and a row of ones, whose sums are db," if ctx.db else ""
    ctx.loops = [f"GEMM x.T @ dy over (inputs{ones}) x (units), reduction over the batch "
                 f"split into slices added in order: {ctx.tile.describe()}."]


def _rows(kernel: Kernel, graph: Graph) -> None:
    ctx = kernel.context
    width = _shape(graph, kernel.group.anchor.inputs[0])[-1]
    ctx.row_threads = row_threads(width)
    ctx.loops = [f"One block of {ctx.row_threads} threads per row (all axes but the last); "
                 "the row's maximum and sum are reduced across the block in a fixed order."]


def _elementwise(kernel: Kernel, graph: Graph) -> None:
    kernel.context.loops = [f"One thread per output element, {ELEMENT_THREADS} a block."]


def _pool2d(kernel: Kernel, graph: Graph) -> None:
    kernel.context.loops = [
        f"One thread per output element (n, oh, ow, c), {ELEMENT_THREADS} a block, channels "
        "fastest (consecutive threads read consecutive addresses)."]


def _pool2d_grad(kernel: Kernel, graph: Graph) -> None:
    kernel.context.loops = [
        f"One thread per element of dx, {ELEMENT_THREADS} a block: it gathers the "
        "gradient of every window covering its position (no atomics: the same sums on any "
        "GPU)."]


def _channels(kernel: Kernel, graph: Graph) -> None:
    kernel.context.loops = [
        "One thread per (sample, channel) over all positions, consecutive threads on "
        "consecutive channels."]


def _reductions(kernel: Kernel, graph: Graph) -> None:
    kernel.context.loops = [
        "Per-channel sums over rows: fixed slices of rows summed by separate blocks "
        "(one thread per channel), then the slices added in order -- the same sums on "
        "any GPU."]


LOSS_THREADS = 64


def _loss(kernel: Kernel, graph: Graph) -> None:
    kernel.context.sum_threads = LOSS_THREADS
    kernel.context.loops = [
        f"One block of {LOSS_THREADS} threads: each thread computes the loss, accuracy and "
        f"gradient of every {LOSS_THREADS}th row, then the block adds the rows' losses and "
        "accuracies in a fixed order."]


EXTENSIONS = {
    "conv2d": _conv2d,
    "conv2d_grad_input": _conv2d_grad_input,
    "conv2d_grad_weight": _conv2d_grad_weight,
    "dense": _dense,
    "dense_grad_weight": _dense_grad_weight,
    "softmax": _rows,
    "softmax_grad": _rows,
    "pool2d": _pool2d,
    "pool2d_grad": _pool2d_grad,
    "global_pool2d": _channels,
    "global_pool2d_grad": _channels,
    "reduce_channels": _reductions,
    "batchnorm_train": _reductions,
    "batchnorm_train_grad": _reductions,
    "loss": _loss,
    "elementwise": _elementwise,
    "update": _elementwise,
}
