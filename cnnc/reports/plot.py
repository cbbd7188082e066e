"""Loss and accuracy curves (matplotlib, an optional extra: pip install 'cnnc[plot]')."""

from __future__ import annotations

from ..errors import CnncRuntimeError
from ..util import atomic_write_bytes


def plot_history(history, path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CnncRuntimeError("--plot needs matplotlib: pip install 'cnnc[plot]'") from None
    h = history.history
    epochs = [e + 1 for e in history.epoch]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, h.get(key, []), marker="o", label=f"train {key}")
        if f"val_{key}" in h:
            ax.plot(epochs, h[f"val_{key}"], marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    from io import BytesIO
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
