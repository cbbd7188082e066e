"""cnnc: a compiler for convolutional neural networks, to Numba kernels for CPU and CUDA.

    >>> import cnnc
    >>> program = cnnc.parse("examples/mnist_cnn.cnn")
    >>> program.model().param_count
    693962
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CnncError, CnncRuntimeError  # noqa: E402


def parse(path_or_text):
    """Parse and check a model file (a path, or the text itself); returns a Program.

    Raises CnncError with every diagnostic if the source is not a valid program.
    """
    from .frontend.checker import check
    from .source import read_source

    text, file = read_source(path_or_text)
    return check(text, file)


def compile(path_or_text, target: str = "cpu", *, model: str | None = None, fuse="all",
            loss: str | None = None, optimizer=None, dtype: str = "float32"):
    """Compile a model to a loaded CompiledModel (see cnnc.compiler.compile).

    `loss` and `optimizer` (written as in a train block, e.g. "adam(learning_rate=0.01)")
    add or override the file's train block."""
    from .compiler import compile as _compile
    return _compile(path_or_text, target, model=model, fuse=fuse, loss=loss,
                    optimizer=optimizer, dtype=dtype)


__all__ = ["CnncError", "CnncRuntimeError", "__version__", "compile", "parse"]
