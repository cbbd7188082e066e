"""cnnc: a compiler for convolutional neural networks, to Numba kernels for CPU and CUDA.

    >>> import cnnc
    >>> program = cnnc.parse("examples/mnist_cnn.cnn")
    >>> program.model().param_count
    693962
"""

from __future__ import annotations

from .errors import CnncError, CnncRuntimeError
from .version import __version__


def parse(path_or_text):
    """Parse and check a model file (a path, or the text itself); returns a Program.

    Raises CnncError with every diagnostic if the source is not a valid program.
    """
    from .frontend import parse as _parse
    return _parse(path_or_text)


def compile(path_or_text, target: str = "cpu", *, model: str | None = None, fuse="all",
            loss: str | None = None, optimizer=None, dtype: str = "float32"):
    """Compile a model to a loaded CompiledModel (see cnnc.compiler.compile).

    `fuse` is "all", "none", or rule names ("epilogue,pool" or a list); `loss` and
    `optimizer` (written as in a train block, e.g. "adam(learning_rate=0.01)") add or
    override the file's train block."""
    from .runtime import direct
    from .targets import get
    chosen = get(target)
    key = direct.request_key(path_or_text, chosen, model, fuse, loss, optimizer, dtype)
    found = direct.load(key, chosen)
    if found is None:
        from .compiler import compile as _compile
        loaded = _compile(path_or_text, chosen, model=model, fuse=fuse, loss=loss,
                          optimizer=optimizer, dtype=dtype)
        direct.remember(key, loaded)
        return loaded
    name, module, path, source, seed = found     # compiled before: no compiler needed
    chosen.require()

    def lower():
        from .compiler import lowered
        return lowered(path_or_text, chosen, model, fuse, loss, optimizer, dtype)

    def profiled():
        from .compiler import profiled_module
        return profiled_module(loaded)
    loaded = chosen.model_class.from_cache(name, module, path, source, seed, lower)
    loaded._load_profiled = profiled             # model.profile() builds it
    return loaded


def import_keras(path, weights=None, defines=None):
    """A Keras model -- code (.py, read and never run), .keras or .h5 -- as .cnn text and
    parameters: a KerasImport(text, params, model_name); see docs/keras.md."""
    from .frontend.keras import import_keras as _import_keras
    return _import_keras(path, weights=weights, defines=defines)


__all__ = ["CnncError", "CnncRuntimeError", "__version__", "compile", "import_keras", "parse"]
