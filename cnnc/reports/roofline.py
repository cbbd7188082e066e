"""The roofline of a profile (`cnnc profile --plot`): matplotlib, the optional `plot` extra.

Log-log axes: arithmetic intensity (FLOP/B) against attained GFLOP/s; the measured
roofs (bandwidth x intensity up to the ridge point, then the peak), and one labelled
point per kernel. With two profiles (`--compare`) the second's kernels are drawn with
another marker.
"""

from __future__ import annotations

from ..errors import CnncRuntimeError
from ..util import atomic_write_bytes


def require_matplotlib():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CnncRuntimeError("--plot needs matplotlib: pip install 'cnnc[plot]'") from None
    return plt


def plot_roofline(profiles, path) -> None:
    """Draw the roofs of profiles[0] and every kernel of each profile; write a PNG."""
    plt = require_matplotlib()
    roofs = profiles[0].roofs
    points = [(p, k) for p in profiles for k in p.kernels if k.flops > 0 and k.gflops > 0]
    xs = [k.intensity for _, k in points] or [roofs.ridge]
    lo = min(min(xs), roofs.ridge) / 4
    hi = max(max(xs), roofs.ridge) * 4
    fig, ax = plt.subplots(figsize=(9, 6))
    ridge = roofs.ridge
    ax.plot([lo, ridge, hi], [lo * roofs.bandwidth_gbs, roofs.peak_gflops, roofs.peak_gflops],
            color="black", linewidth=2,
            label=f"measured roofs: {roofs.bandwidth_gbs:.1f} GB/s, "
                  f"{roofs.peak_gflops:.1f} GFLOP/s")
    markers = ["o", "s"]
    for i, p in enumerate(profiles):
        mine = [k for q, k in points if q is p]
        ax.scatter([k.intensity for k in mine], [k.gflops for k in mine],
                   marker=markers[i % 2], s=50, zorder=3,
                   label=f"fusion {p.fuse}" if len(profiles) > 1 else "kernels")
        for k in mine:
            ax.annotate(f"[{k.kernel}] {k.function}", (k.intensity, k.gflops),
                        textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP/byte, explain's model)")
    ax.set_ylabel("attained GFLOP/s (median)")
    first = profiles[0]
    ax.set_title(f"{first.model}: {first.step}, batch {first.batch}, target {first.target}, "
                 f"{first.threads} threads\n{roofs.device}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    from io import BytesIO
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
