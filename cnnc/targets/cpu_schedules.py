"""The CPU target's loop schedules, chosen per kernel from its layout and channel counts
(the context its template renders with), and the numpy code that derives parameters on
the host (NumpyPrepare). Imported by CpuTarget only when it generates code: loading a
compiled model needs none of it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..codegen.exprs import f32, substitute
from ..codegen.kernels import Kernel
from ..ir import ops
from ..ir.ops.structural import PANEL, conv_panel
from ..runtime.cpu_features import gemm_rows
from .base import Prepare

# One-input-channel convolutions vectorize over output channels from this many on (over
# output columns below it).
TAPS_MIN_CHANNELS = 16
# Convolutions with up to this many input channels read their patches in place (`gemm`
# schedule), more gather them: resnet_tiny's (batch 64) in place against gathered, both in
# thread chunks, 3 -> 16: 0.79x the time, 16 -> 16: 0.86x, 16 -> 32 strided: 0.81x,
# 32 -> 32: 0.88x, 32 -> 64 strided: 1.00x, 64 -> 64: 0.98x; alexnet's 13x13 convolutions
# (256 and 384 channels, batch 4) 1.16-1.22x.
IN_PLACE_MAX_CHANNELS = 64
# Most rows of an in-place convolution's register tile of two or more vectors of channels.
# The micro-kernel (fma_tile, the preamble) holds the tile's sums in vector registers by
# construction; measured on a 2-core Intel Xeon (AVX-512) at batch 64, resnet_tiny's
# 64 -> 64 convolution (8 columns) ran 0.80x the time with 8 x 32 tiles as with 4 x 32,
# its 32 -> 32 one (16 columns) 0.83x. (Before fma_tile, loops over the tile left its
# sums' stores in the loop from 6 rows on: 2.6-3.3x the time.) Taller in-place tiles were
# not measured.
IN_PLACE_WIDE_TILE_ROWS = 8
# A `flat` convolution's block: as many tiles of outputs (at most BLOCK_TILES) as keep its
# gathered patches within PATCH_BYTES, in L2 beside a panel of the kernel (alexnet's
# 27x27 96 -> 256 convolution at batch 4, 12 x 32 tiles: 11.8 ms in blocks of 4 tiles,
# 12.5 in blocks of 2; its 13x13 ones the same with up to 1 MiB of patches as with 512 KiB).
BLOCK_TILES = 4
PATCH_BYTES = 512 * 1024
# A `flat` convolution's blocks are a multiple of this many, its tiles spread evenly over
# them: Numba splits a parallel loop into one range of iterations per thread, so 2 or 4
# threads get the same work within a tile. alexnet's 13x13 256 -> 384 convolution at
# batch 4 made 15 blocks of 48 outputs (one thread computed 384 outputs, the other 292):
# with 16 blocks of 3-4 tiles, 0.90x the time; its 384 -> 384 one (19 -> 20 blocks of 36)
# 0.97x; its 27x27 one (61 -> 64 blocks, balanced within 2% before) 1.01x.
EVEN_BLOCKS = 4
# Most rows of a convolution's register tile with one AVX-512 vector of channels: 16 rows
# gained nothing on resnet_tiny's 16-channel convolutions (1.39 ms against 1.36) and its
# 3-channel one ran 1.4x the time.
ONE_VECTOR_TILE_ROWS = 8
# Most rows of a tap tile (_taps_fit) with one vector of channels, from a vector of input
# channels on: its sums take one FMA per tap and step, so with 8 rows each sum's chain of
# dependent FMAs (a kernel row's taps) is as long as the step's FMAs take to issue, with
# 16 half as long. resnet_tiny's 16 -> 16 convolution at batch 64 ran 0.94-0.97x the time
# with 16 x 16 tiles as with 8 x 16 (3 interleaved runs); its 3 -> 16 one 1.2x (a step
# per input channel: 3 per kernel row).
ONE_VECTOR_TAP_TILE_ROWS = 16
# Vector registers a register tile of two or more AVX-512 vectors of channels may take (of
# 32; the rest hold the panel's row and a broadcast): 12 x 32 tiles. alexnet's
# 27x27 96 -> 256 convolution: 12.5 ms with 12 x 32 tiles, 13.2 with 8 x 32, 14.6 with
# 6 x 32 (blocks of 24 outputs).
WIDE_TILE_REGISTERS = 24
# How far ahead a GEMM tile prefetches its panel of the kernel (fma_tile's `ahead`). A
# dense layer reads each panel once per block of samples: alexnet's first dense layer at
# batch 4 (151 MB of kernel, streamed from memory) ran 0.64x the time with prefetches 1 to
# 8 KiB ahead, mnist_cnn's (2.8 MB) 0.84x at batch 256, 0.79x at batch 8.
PREFETCH_BYTES = 2048
# A convolution's tiles prefetch only a panel larger than this (beyond L1): alexnet's
# forward pass (panels of 288 to 432 KiB) 0.88x the time; resnet_tiny's 64 -> 64
# convolution (72 KiB) 0.91x, its 32 -> 32 (36 KiB) 0.98x, but its 16 -> 16 (9 KiB) 1.04x
# and its first (2 KiB) 1.03x.
PREFETCH_PANEL_BYTES = 32 * 1024
# The `window` schedule keeps the input patch under a pooling window, the kernel's taps
# and the window's convolution outputs in vector registers: at most this many of them.
WINDOW_REGISTERS = 32
CHUNKS = 16       # fixed chunk count of deterministic reductions (any thread count)
# Additions up to which a weight gradient sums its chunks in one thread (a few
# microseconds): each parallel loop is a function of its own that Numba compiles, about
# half a second of a cold compile.
SERIAL_SUM = 1 << 17


def _window_fits(ctx) -> bool:
    """Whether a one-channel convolution with valid pooling can take the `window` schedule
    (mnist_cnn's conv + pool at batch 256: 0.44 ms against 1.07 for `taps`)."""
    p = ctx.pool
    if p is None or not p.exact:
        return False
    ctx.patch_h = (p.kh - 1) * ctx.sh + (ctx.kh - 1) * ctx.dh + 1
    ctx.patch_w = (p.kw - 1) * ctx.sw + (ctx.kw - 1) * ctx.dw + 1
    return ctx.patch_h * ctx.patch_w + ctx.kh * ctx.kw + p.kh * p.kw <= WINDOW_REGISTERS


def _block_fits(ctx, out_h: int, out_w: int) -> bool:
    """Whether a one-channel convolution without pooling can take the `block` schedule:
    `window`'s, for a block of 2x2 (else 1x4, 1x2) outputs it writes (mnist_cnn's training
    convolution at batch 128: 0.33 ms against 0.74 for `taps`). Sets ctx.block."""
    for bh, bw in ((2, 2), (1, 4), (1, 2)):
        patch_h = (bh - 1) * ctx.sh + (ctx.kh - 1) * ctx.dh + 1
        patch_w = (bw - 1) * ctx.sw + (ctx.kw - 1) * ctx.dw + 1
        # a thread's rows are its own (bh divides out_h); a last block of columns may
        # start earlier and overlap the one before, in the same thread
        if out_h % bh == 0 and bw <= out_w and \
                patch_h * patch_w + ctx.kh * ctx.kw + bh * bw <= WINDOW_REGISTERS:
            ctx.block, ctx.patch_h, ctx.patch_w = (bh, bw), patch_h, patch_w
            return True
    return False


def _most_tile_rows(lanes: int, nr: int) -> int:
    """The most rows of a convolution's register tile of nr channels: with AVX-512, 8 for
    one vector (resnet_tiny's 16-channel convolutions ran 0.9x the time with 8 x 16 tiles
    as with 6 x 16), as many as WIDE_TILE_REGISTERS hold for more; else gemm_rows's."""
    if lanes >= 16 and nr == lanes:
        return ONE_VECTOR_TILE_ROWS
    if lanes >= 16:
        return max(1, WIDE_TILE_REGISTERS // (nr // lanes))
    return gemm_rows(lanes, nr)


def _taps_fit(ctx, rows: int) -> bool:
    """Whether an in-place convolution's tile of `rows` rows takes a kernel row's taps at
    once (fma_tile_taps): per input channel, the taps' rows of the panel stay in vector
    registers and each input column under the tile is broadcast once for all the taps over
    it, where a tile over one tap's channels at a time (fma_tile_strided) broadcasts per
    tap: with one vector of channels, one broadcast per FMA. It takes adjacent taps (no
    dilation along w), and the tile's sums, the taps' rows and a broadcast must fit the
    vector registers (32 with AVX-512, 16 with AVX2). resnet_tiny at batch 64 on a 2-core
    Intel Xeon (AVX-512), fastest of 9 interleaved rounds against fma_tile_strided with the
    same tiles: 3 -> 16 0.86x the time, 16 -> 16 0.80x and (+ add) 0.89x, 16 -> 32 strided
    0.87x, 32 -> 32 0.94x and 0.90x, 32 -> 64 strided 0.93x, 64 -> 64 0.90x and 0.86x; the
    forward pass 0.92x. Its sums run in (kernel row, input channel, tap) order, those of
    fma_tile_strided in (kernel row, tap, input channel) order: each the same bits on any
    thread count and any tile shape, but where the registers decide between them (a tile of
    32 channels fits AVX-512's, not AVX2's), modules generated for the two widths differ
    in the last bits."""
    per_row = -(-ctx.nr // ctx.lanes)
    registers = 32 if ctx.lanes >= 16 else 16
    return ctx.in_place and ctx.dw == 1 and ctx.kw > 1 and \
        per_row * (ctx.kw + rows) + 1 <= registers


def _tap_tile_rows(ctx, out_w: int) -> int:
    """Rows of an in-place convolution's tap tile (_taps_fit), 0 where none fits: with one
    vector of channels and of input channels, up to ONE_VECTOR_TAP_TILE_ROWS, else (or
    where those do not fit) the tile's rows (ctx.mr)."""
    candidates = [ctx.mr]
    if ctx.nr == ctx.lanes and ctx.cin >= ctx.lanes:
        candidates.insert(0, _tile_rows(out_w, ctx.lanes, ctx.nr, ONE_VECTOR_TAP_TILE_ROWS))
    return next((rows for rows in candidates if _taps_fit(ctx, rows)), 0)


def _tile_rows(m: int, lanes: int, nr: int, top: int | None = None) -> int:
    """Rows of a convolution's register tile for m output columns: the most that fit
    (`top`, by default _most_tile_rows's), unless a tile of 4 or more rows computes 15%
    fewer (4 for 8 columns rather than 6 + 2, of which 4 are wasted; 5 for alexnet's 13
    columns, 15 computed against 18: its forward pass 0.94x the time). Tiles under 4 rows
    (when more fit) measured slower for every width: they load more per FMA, and LLVM laid
    out 3 x 16 badly."""
    top = top or _most_tile_rows(lanes, nr)
    computed = {mr: -(-m // mr) * mr for mr in range(min(4, top), top + 1)}
    best = min(computed, key=lambda mr: (computed[mr], -mr))
    return best if computed[best] <= 0.85 * computed[top] else top


def _affine(var: str, scale: int, offset: int) -> str:
    text = var if scale == 1 else f"{var} * {scale}"
    return f"{text} + {offset}" if offset else text


def _conv2d(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    ctx.flat = False
    conv = kernel.group.anchor
    out_h, out_w, ctx.cout = graph.type(conv.output).shape[-3:]
    ctx.cin = graph.type(conv.inputs[0]).shape[-1]
    if ctx.packed:
        ctx.schedule = "gemm"
        # up to 64 input channels, the patches are read in place from the zero-padded
        # input rows under the output row, a tap's channels at a time (resnet_tiny's first
        # convolution, 3 channels: 0.52x the time of gathering them; see
        # IN_PLACE_MAX_CHANNELS). An earlier in-place loop that looked each element's place
        # up in a table of offsets ran slower than gathering from 16 channels on (the
        # strided 16 -> 32 convolution: 2.5 ms against 1.3).
        ctx.in_place = ctx.cin <= IN_PLACE_MAX_CHANNELS
        # a run of consecutive elements of a patch in the input rows: a kernel row's taps
        # (kw * cin elements) when they are adjacent (no dilation along w), else one tap
        # (resnet_tiny's 3x3 convolutions: one micro-kernel call per kernel row, not per
        # tap; alexnet's 11x11 3-channel one: runs of 33, not 3)
        ctx.run_taps = ctx.kw if ctx.dw == 1 else 1
        ctx.nr = conv_panel(ctx.cout)
        ctx.mr = _tile_rows(out_w, ctx.lanes, ctx.nr)
        panel_bytes = ctx.kh * ctx.kw * ctx.cin * ctx.nr * 4
        ctx.prefetch = PREFETCH_BYTES if panel_bytes > PREFETCH_PANEL_BYTES else 0
        if ctx.in_place and ctx.nr > ctx.lanes:
            ctx.mr = min(ctx.mr, IN_PLACE_WIDE_TILE_ROWS)
        tap_rows = _tap_tile_rows(ctx, out_w)
        ctx.tap_tile = tap_rows > 0
        ctx.mr = tap_rows or ctx.mr
        # in place, a tile's rows are one pointer's constant offsets (fma_tile_strided,
        # fma_tile_taps), so a last partial tile reads this many columns past the row,
        # zeros kept after the ring
        ctx.tail_rows = -out_w % ctx.mr if ctx.in_place else 0
        # gathered patches without pooling: blocks of outputs across rows (`flat`), in the
        # tallest tiles, none wasted at a row's end. Also where whole tiles fit a row:
        # alexnet's 27x27 96 -> 256 convolution at batch 4 ran 11.4 ms flat (12 x 32 tiles)
        # against 13.2 in rows (9 x 32), its 13x13 ones 0.77-0.79x the time of rows of
        # 7 x 32.
        ctx.flat = not ctx.in_place and ctx.pool is None
        if ctx.flat:
            ctx.mr = _most_tile_rows(ctx.lanes, ctx.nr)
            taps = ctx.kh * ctx.kw * ctx.cin
            ctx.block_tiles = max(1, min(BLOCK_TILES, PATCH_BYTES // (ctx.mr * taps * 4)))
            ctx.even_blocks = EVEN_BLOCKS
        patches = ("copies the zero-padded input rows under an output row and multiplies the "
                   "patches in them" if ctx.in_place else
                   "gathers an output row's patches (out_w, kh*kw*cin) and multiplies them")
        how = (f"Each thread {patches} with the packed kernel, a GEMM with register tiles of "
               f"{ctx.mr} columns x {ctx.nr} channels (the sums stay in vector registers for "
               f"the whole tap loop" +
               (f"; per input channel, the {ctx.kw} taps of a kernel row at once)."
                if ctx.tap_tile else ")."))
    elif ctx.cout >= TAPS_MIN_CHANNELS and _window_fits(ctx):
        ctx.schedule = "window"
        p = ctx.pool
        ctx.by_column = True
        ctx.loops = [
            f"Parallel over (n, pooled row). One input channel: per {p.kh}x{p.kw} window, "
            f"the {ctx.patch_h}x{ctx.patch_w} input patch under it times the kernel's "
            f"{ctx.kh * ctx.kw} taps gives its {p.kh * p.kw} convolution outputs, "
            f"vectorized over output channels; they go through the epilogue and are pooled "
            f"in registers: the convolution output is never written."]
        return
    elif ctx.cout >= TAPS_MIN_CHANNELS and ctx.pool is None and \
            _block_fits(ctx, out_h, out_w):
        ctx.schedule = "block"
        bh, bw = ctx.block
        ctx.by_column = True
        ctx.loops = [
            f"Parallel over (n, block of {bh} output row{'s' if bh > 1 else ''}). One input "
            f"channel: per {bh}x{bw} block of outputs, the {ctx.patch_h}x{ctx.patch_w} input "
            f"patch under it times the kernel's {ctx.kh * ctx.kw} taps, vectorized over "
            f"output channels, through the epilogue into y (written once)."]
        return
    elif ctx.cout >= TAPS_MIN_CHANNELS:
        ctx.schedule = "taps"
        ctx.tap_col = lambda s: _affine("ow", ctx.sw, s * ctx.dw)
        terms = [f"x{r}_{s} * wk[{r * ctx.kw + s}, co]"
                 for r in range(ctx.kh) for s in range(ctx.kw)]
        ctx.tap_sum = "v = (\n    " + "\n    + ".join(terms) + "\n)"
        how = ("One input channel: each thread zero-pads the input rows under an output row; "
               "per output column the taps under it multiply the kernel's rows, vectorized "
               "over output channels.")
    else:
        ctx.schedule = "cols"
        terms = [f"w{r}_{s} * rows[{r}, {_affine('ow', ctx.sw, s * ctx.dw)}]"
                 for r in range(ctx.kh) for s in range(ctx.kw)]
        ctx.col_sum = "v = (\n    " + "\n    + ".join(terms) + "\n)"
        how = ("One input channel: each thread zero-pads the input rows under an output row "
               "and sums the shifted rows per output channel, vectorized over output columns.")
    ctx.by_column = ctx.schedule in ("gemm", "taps")     # acc[ow, co], else acc[co, ow]
    if ctx.flat:
        block = ctx.mr * ctx.block_tiles
        ctx.loops = [
            f"Parallel over blocks of up to {block} outputs, consecutive in (n, oh, ow) order "
            f"across rows and images. Each thread gathers the block's patches ({block}, "
            f"kh*kw*cin) and multiplies them with the packed kernel, a GEMM with register "
            f"tiles of {ctx.mr} outputs x {ctx.nr} channels (the sums stay in vector registers "
            f"for the whole tap loop); each tile goes through the epilogue into y (written "
            f"once)."]
    elif ctx.pool is not None:
        p = ctx.pool
        ctx.loops = [f"Parallel over (n, pooled row). {how} The {p.kh} convolution rows under "
                     f"a row of {p.kh}x{p.kw} windows go through the epilogue and are pooled "
                     f"at once: the convolution output is never written."]
    else:
        ctx.loops = [f"Parallel over (n, output row). {how} Writes y once."]


def _dense(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    ctx.mr, ctx.nr = gemm_rows(ctx.lanes), PANEL
    ctx.prefetch = PREFETCH_BYTES
    ctx.one_panel = graph.type(kernel.group.anchor.output).shape[-1] <= PANEL
    # inference of one sample: two panels per task instead of a tile of rows it mostly
    # wastes (at 2 to 5 samples the tile reads the kernel once, a row at a time would not)
    ctx.narrow = not ctx.row and not kernel.group.backward and not ctx.one_panel
    row = ""
    if ctx.row:
        row = (" Each row's softmax is taken in its tile (one panel holds the row)."
               if ctx.one_panel else
               " Then parallel over samples for the softmax of each row of y.")
    ctx.loops = [
        f"Parallel over (panel of {PANEL} outputs, block of {ctx.mr} samples), "
        f"panel-major: a GEMM with register tiles; per task the {ctx.mr}x{PANEL} sums "
        f"stay in vector registers for the whole input loop ({ctx.x} broadcast, a row of the "
        f"panel loaded), then go through the epilogue into y once." + row]


def _dense_grad_weight(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    ctx.mr, ctx.nr = gemm_rows(ctx.lanes), PANEL
    packs = "packs dy and sums its columns into db" if ctx.db else "packs dy"
    ctx.loops = [f"Parallel over blocks of {ctx.mr} inputs for a GEMM over the batch with "
                 f"register tiles of {ctx.mr} inputs x {PANEL} outputs (every panel of a "
                 f"block in turn), once one thread {packs}; writes dw once."]


def _channel_panel(cout: int) -> int:
    """The columns of a weight gradient's register tile: the widest of 32, 16 or 8 output
    channels that divides cout (one or two AVX-512 vectors), else the largest divisor of
    cout up to 32 (dy is read in place, so a panel cannot run past cout)."""
    for width in (PANEL, 16, 8):
        if cout % width == 0:
            return width
    return max(d for d in range(1, min(cout, PANEL) + 1) if cout % d == 0)


def _weight_tile_rows(rows: int, lanes: int, nr: int) -> int:
    """Rows of a weight gradient's register tile: as many as the vector registers hold
    (the tile's accumulators, a row of dy and a broadcast per row), then evened out over
    the row blocks, so that a last partial block wastes little (10 rows: 2 blocks of 5,
    not 9 + 1)."""
    per_row = -(-nr // lanes)
    registers = 32 if lanes >= 16 else 16
    top = max(1, min(10, (registers - 2 - per_row) // (per_row + 1)))
    blocks = -(-rows // top)
    return -(-rows // blocks)


def _conv2d_grad_weight(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    x, dy = (graph.type(v) for v in kernel.group.anchor.inputs)
    cin, cout = x.shape[-1], dy.shape[-1]
    rows = ctx.kh * ctx.kw * cin + (1 if ctx.db else 0)
    ctx.chunks = CHUNKS
    ctx.nr = _channel_panel(cout)
    ctx.mr = _weight_tile_rows(rows, ctx.lanes, ctx.nr)
    ctx.pad_sum, ctx.pad_w = ctx.pt + ctx.pb, ctx.pl + ctx.pr
    ctx.copy = ctx.padded or ctx.db is not None
    ctx.serial_sum = rows * cout * CHUNKS <= SERIAL_SUM
    ctx.loops = [
        f"Parallel over {CHUNKS} fixed chunks of the batch, then "
        + ("one thread" if ctx.serial_sum else "parallel over taps")
        + " for the ordered sum of the chunks. Per sample, a GEMM over its output positions "
        f"with register tiles of {ctx.mr} taps x {ctx.nr} channels: the tile's sums stay in "
        f"vector registers while the positions stream (a tap broadcast, a row of dy loaded)."
        + (" db is the tap of an extra channel of ones." if ctx.db else "")]


def _pool2d(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    ctx.channels = graph.type(kernel.group.anchor.outputs[0]).shape[-1]
    ctx.loops = ["Parallel over (n, output row); " + (
        "windows clipped to the input." if ctx.padded else
        "the window taps unrolled." if ctx.kh * ctx.kw <= 16 else "windows inside the input.")]


def _pool2d_grad(kernel: Kernel, graph) -> None:
    ctx = kernel.context
    ctx.loops = ["Parallel over rows of dx; each window's positions written once."
                 if ctx.gather else "Parallel over samples (overlapping windows)."]


def _chunked(text: str):
    def extend(kernel: Kernel, graph) -> None:
        kernel.context.chunks = CHUNKS
        kernel.context.loops = [text]
    return extend


def _loops(text: str):
    def extend(kernel: Kernel, graph) -> None:
        kernel.context.loops = [text]
    return extend


def _update(kernel: Kernel, graph) -> None:
    kernel.context.loops = ["Parallel over elements." + (
        " One kernel updates every parameter of the step (the flat parameter buffer)."
        if kernel.context.all else "")]


EXTENSIONS = {
    "conv2d": _conv2d,
    "dense": _dense,
    "pool2d": _pool2d,
    "global_pool2d": _loops("Parallel over samples; channels innermost."),
    "elementwise": _loops("Parallel over all elements of the flattened tensor."),
    "softmax": _loops("Parallel over rows (all axes but the last)."),
    "conv2d_grad_input": _loops(
        "Parallel over (n, input row); each thread gathers the dy values under each input "
        "position and multiplies them with the packed kernel in blocks of 2 columns x 4 "
        "channels."),
    "conv2d_grad_weight": _conv2d_grad_weight,
    "dense_grad_weight": _dense_grad_weight,
    "reduce_channels": _chunked(f"Parallel over {CHUNKS} fixed chunks of rows; chunks summed "
                                f"in order."),
    "pool2d_grad": _pool2d_grad,
    "global_pool2d_grad": _loops("Parallel over samples."),
    "softmax_grad": _loops("Parallel over rows."),
    "batchnorm_train": _chunked("Parallel over fixed chunks of rows for the batch "
                                "statistics, then over rows to normalize."),
    "batchnorm_train_grad": _chunked("Parallel over fixed chunks of rows for the channel "
                                     "sums, then over rows."),
    "loss": _loops("Parallel over rows; the batch sums are taken in row order."),
    "update": _update,
}


class NumpyPrepare(Prepare):
    """A derived parameter as a numpy expression over whole arrays, or, in a training step
    and for an op with a `prepare_template` (the kernel packings), a parallel kernel of the
    module writing a fresh array: a training step packs its dense kernels anew every step,
    and numpy's copy of a transposed view ran 2-3x slower. Once per parameter set
    (prepare(), evaluation) numpy costs less than compiling the kernel."""

    def __init__(self, namer):
        super().__init__(namer)
        self.kernels: dict[str, str] = {}          # template -> the kernel's name

    def lines(self, graph, node, params: str = "p", every_step: bool = False) -> list[str]:
        op = ops.get(node.op)
        if every_step and op.prepare_template is not None:
            return self._kernel_lines(graph, node, op, params)
        lines = [f"# {node.op}: {op.doc}"]
        lines += [f"{role} = {params}[{value!r}]" for role, value in zip(op.inputs, node.inputs)]
        names = {k: f32(v) for k, v in node.attrs.items() if isinstance(v, float)}
        steps = op.expr if isinstance(op.expr, tuple) else (op.expr,)
        lines += [f"value = {substitute(step, names)}" for step in steps[:-1]]
        expr = substitute(steps[-1], names)
        if op.prepare_template is not None:      # a packed kernel, read at full vector width
            lines += [f"value = {expr}", f"{params}[{node.output!r}] = host_aligned(value)"]
        elif len(expr) + len(node.output) > 80:
            lines += [f"value = {expr}", f"{params}[{node.output!r}] = value"]
        else:
            lines.append(f"{params}[{node.output!r}] = {expr}")
        return lines

    def _kernel_lines(self, graph, node, op, params: str) -> list[str]:
        from ..codegen.render import render_code
        name = self.kernels.get(op.prepare_template)
        if name is None:
            name = self.kernels[op.prepare_template] = self.namer(op.prepare_template,
                                                                  "_prepare")
            source = render_code(f"cpu/{op.prepare_template}.j2", p=SimpleNamespace(name=name))
            self.sources.append(source)
            self.named_sources[name] = source
        (value,) = node.inputs
        shape = graph.type(value).shape
        matrix = (int(np.prod(shape[:-1])), shape[-1])
        out_shape = tuple(graph.type(node.output).shape)
        view = f"{params}[{value!r}]" + (f".reshape{matrix}" if len(shape) != 2 else "")
        transpose = bool(op.template_args.get("transpose"))
        return [f"# {node.op}: {op.doc}",
                f"value = host_empty({out_shape})",
                f"{name}({view}, value, {transpose})",
                f"{params}[{node.output!r}] = value"]
