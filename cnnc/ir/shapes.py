"""Output sizes and padding for windowed ops, exactly as TensorFlow computes them.

For a window of `k` taps with dilation `d` the effective extent is `(k - 1) * d + 1`.

* ``valid``: ``out = (n - extent) // stride + 1``; no padding.
* ``same``:  ``out = ceil(n / stride)``; the total padding
  ``max((out - 1) * stride + extent - n, 0)`` is split with the extra row or column at the
  bottom/right when it is odd (TF's rule, which differs from PyTorch's symmetric padding).
"""

from __future__ import annotations


def effective(k: int, dilation: int = 1) -> int:
    return (k - 1) * dilation + 1


def window_out(n: int, k: int, stride: int, padding: str, dilation: int = 1):
    """(out, pad_before, pad_after) along one axis; out is 0 when the window does not fit."""
    ext = effective(k, dilation)
    if padding == "valid":
        return (max(0, (n - ext) // stride + 1) if n >= ext else 0), 0, 0
    out = -(-n // stride)
    total = max((out - 1) * stride + ext - n, 0)
    return out, total // 2, total - total // 2


def window_2d(hw: tuple[int, int], kernel, strides, padding: str, dilation=(1, 1)):
    """((oh, ow), (pad_top, pad_bottom, pad_left, pad_right))."""
    oh, pt, pb = window_out(hw[0], kernel[0], strides[0], padding, dilation[0])
    ow, pl, pr = window_out(hw[1], kernel[1], strides[1], padding, dilation[1])
    return (oh, ow), (pt, pb, pl, pr)
