"""Keras weights from HDF5 (h5py), read defensively.

Before any dataset is read the whole file is walked link by link (never following one):
external and soft links, external and virtual datasets are refused, and every dataset's
declared size is compared with the file's size (a "shape bomb" declares gigabytes in a
file of kilobytes). Each weight's shape and dtype are compared with the model's before
it is read. Two layouts are understood:

* Keras 3 (`.weights.h5`, and `model.weights.h5` inside a `.keras` zip; tf.keras 2's
  `save_weights("x.weights.h5")` too): `layers/<layer>/vars/<0, 1, ...>` in Keras's
  weight order;
* legacy HDF5 (`model.save("x.h5")`, `save_weights("x.h5")`, Keras 3 and tf.keras 2):
  a `layer_names` attribute (on `model_weights/` or the root) and per layer a
  `weight_names` attribute naming its datasets.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

from ...errors import CnncRuntimeError, FileError
from ..limits import human

MAX_OBJECTS = 100_000
MAX_DEPTH = 32


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise CnncRuntimeError("reading Keras weights (HDF5) needs h5py: "
                               "pip install 'cnnc[keras]'") from None
    return h5py


def open_h5(source, label: str):
    """An h5py File from a path or from bytes (a `.keras` member), and the file's size."""
    h5py = h5py_module()
    try:
        if isinstance(source, bytes):
            return h5py.File(io.BytesIO(source), "r"), len(source)
        size = os.path.getsize(source)
        return h5py.File(source, "r"), size
    except FileNotFoundError:
        raise FileError(label, "no such file") from None
    except (OSError, ValueError) as e:
        raise FileError(label, f"not a valid HDF5 file ({str(e).splitlines()[0]})") from None


def check_file(f, size: int, label: str) -> None:
    """Walk every link of the file without following any; refuse links out of it, links
    that are not hard links, external or virtual datasets, and shape bombs."""
    h5py = h5py_module()
    count = 0
    stack = [(f, "", 0)]
    while stack:
        group, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FileError(label, f"groups nested deeper than {MAX_DEPTH} at {path}")
        for key in group:
            count += 1
            if count > MAX_OBJECTS:
                raise FileError(label, f"more than {MAX_OBJECTS:,} objects")
            full = f"{path}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise FileError(label, f"{full} is an external link (to {link.filename}); "
                                       f"cnnc never follows links out of a weights file")
            if isinstance(link, h5py.SoftLink):
                raise FileError(label, f"{full} is a soft link (to {link.path}); cnnc "
                                       f"reads only plain datasets")
            obj = group.get(key)
            if isinstance(obj, h5py.Group):
                stack.append((obj, full, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                _check_dataset(obj, full, size, label)


def _check_dataset(dset, path: str, size: int, label: str) -> None:
    if dset.external:
        raise FileError(label, f"{path} is an external dataset (its data lives in another "
                               f"file); refused")
    if dset.is_virtual:
        raise FileError(label, f"{path} is a virtual dataset; refused")
    shape = dset.shape or ()
    nbytes = math.prod(shape) * dset.dtype.itemsize
    limit = size * (1000 if dset.compression else 1) + 4096
    if nbytes > limit:
        raise FileError(label, f"{path} declares shape {shape} ({human(nbytes)}) in a file "
                               f"of {human(size)}; refused unread")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_weights(source, label: str, statements, shapes: dict) -> dict:
    """{"<layer>/<param>": float32 array} for the model's statements, every weight's
    shape checked against `shapes` (cnnc's) before it is read."""
    f, size = open_h5(source, label)
    try:
        with f:
            return _read(f, size, label, statements, shapes)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise FileError(label, f"cannot read the weights ({e})") from None


def _read(f, size: int, label: str, statements, shapes: dict) -> dict:
    check_file(f, size, label)
    if isinstance(f.get("layers"), h5py_module().Group):
        found = _keras3(f, label)
    else:
        found = _legacy(f, label)
    params = {}
    wanted = {s.name: s for s in statements}
    for layer, datasets in found.items():
        if layer not in wanted:
            raise FileError(label, f"holds weights for layer '{layer}', which the "
                                   f"model does not have")
    for s in statements:
        datasets = found.get(s.name, [])
        expected = [w for w in s.weights if f"{s.name}/{w}" in shapes]
        if not datasets and expected:
            raise FileError(label, f"no weights for layer '{s.name}' (expected "
                                   f"{', '.join(expected)})")
        if len(datasets) != len(expected):
            raise FileError(label, f"layer '{s.name}': the file holds {len(datasets)} "
                                   f"weights, the model expects {len(expected)} "
                                   f"({', '.join(expected) or 'none'})")
        for (given, dset), param in zip(datasets, expected):
            if given is not None and given != param:
                raise FileError(label, f"layer '{s.name}': weight '{given}' where the "
                                       f"model expects '{param}'")
            key = f"{s.name}/{param}"
            if tuple(dset.shape) != shapes[key]:
                raise FileError(label, f"layer '{s.name}': {param} has shape "
                                       f"{tuple(dset.shape)} in the file, the model "
                                       f"expects {shapes[key]}")
            if dset.dtype != np.float32:
                raise FileError(label, f"layer '{s.name}': {param} is {dset.dtype}, "
                                       f"not float32 (quantized or mixed-precision "
                                       f"weights are not supported)")
            array = np.asarray(dset[()], dtype=np.float32)
            if not np.all(np.isfinite(array)):
                raise FileError(label, f"layer '{s.name}': {param} holds NaN or "
                                       f"infinite values")
            params[key] = array
    return params


def _keras3(f, label: str) -> dict:
    h5py = h5py_module()
    found = {}
    for layer in f["layers"]:
        group = f["layers"][layer]
        if not isinstance(group, h5py.Group):
            raise FileError(label, f"/layers/{layer} is not a group")
        variables = group.get("vars")
        keys = sorted(variables, key=_index) if isinstance(variables, h5py.Group) else []
        datasets = [(None, variables[k]) for k in keys]
        if any(not isinstance(d, h5py.Dataset) for _, d in datasets):
            raise FileError(label, f"/layers/{layer}/vars holds something that is not a "
                                   f"dataset")
        if datasets:
            found[layer] = datasets
    return found


def _index(key: str) -> int:
    return int(key) if key.isdigit() else 1 << 30


def _legacy(f, label: str) -> dict:
    h5py = h5py_module()
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
        raise FileError(label, "not a Keras weights file (no layers/ group and no "
                               "layer_names attribute)")
    found = {}
    for name in root.attrs["layer_names"]:
        name = _text(name)
        group = root.get(name)
        if not isinstance(group, h5py.Group):
            raise FileError(label, f"layer '{name}' is listed but has no group")
        datasets = []
        for weight in group.attrs.get("weight_names", []):
            weight = _text(weight)
            dset = group.get(weight)
            if not isinstance(dset, h5py.Dataset):
                raise FileError(label, f"layer '{name}': weight '{weight}' is missing")
            param = weight.rpartition("/")[2].partition(":")[0]
            datasets.append((param, dset))
        if datasets:
            found[name] = datasets
    return found
