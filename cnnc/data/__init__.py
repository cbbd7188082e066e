"""Datasets: IDX and .npz readers, named datasets, the embedded MNIST test set, download.

    ds = cnnc.data.load("mnist")              # or "fashion_mnist", a folder, an .npz
    ds.x_train.shape, ds.y_train.shape        # (N, 28, 28, 1) float32 in [0, 1], (N,) int

Named datasets are looked up in `$CNNC_DATA_DIR/<name>`, the user's cache directory
(`~/.cache/cnnc/data/<name>`) and `/usr/share/datasets/<name with a dash>` (Debian's
dataset-fashion-mnist installs there). When full MNIST is absent, `mnist` falls back to
the MNIST test set shipped with cnnc, split 8,000 / 2,000 (and says so).

Every problem with a file -- missing, truncated, wrong magic number, image and label
counts that differ, images that do not fit the model -- is a FileError naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CnncError, Diagnostic, FileError

EMBEDDED = Path(__file__).resolve().parent / "embedded"
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Official files and their MD5 sums.
SOURCES = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}),
}
EMBEDDED_SPLIT = 8000
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str
    note: str = ""            # e.g. that the embedded subset stands in for full MNIST


def read_idx(path) -> np.ndarray:
    """An IDX file (raw or gzip) as a numpy array; FileError on any defect."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileError(path, "no such file") from None
    except OSError as e:
        raise FileError(path, f"cannot read: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise FileError(path, f"corrupt gzip data ({e})") from None
    if len(raw) < 4:
        raise FileError(path, "too short for an IDX file")
    zero, kind, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind not in IDX_TYPES or ndim == 0:
        raise FileError(path, f"not an IDX file (magic number 0x{raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise FileError(path, "truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[kind])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[header:]
    if len(body) < expected:
        raise FileError(path, f"truncated: {len(body):,} bytes of data, the header promises "
                              f"{expected:,} ({' x '.join(map(str, dims))})")
    if len(body) > expected:
        raise FileError(path, f"{len(body) - expected:,} bytes after the data the header "
                              f"describes")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _images(array: np.ndarray, path) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise FileError(path, f"images must be (N, H, W) or (N, H, W, C), found {array.shape}")
    if array.dtype.kind not in "biuf":
        raise FileError(path, f"images must be numbers, found {array.dtype} values")
    if len(array) == 0:
        raise FileError(path, "holds no images")
    x = array.astype(np.float32)
    if array.dtype == np.uint8:
        x /= 255.0
    elif not np.all(np.isfinite(x)):
        raise FileError(path, "images hold NaN or infinite values (or values too large "
                              "for float32)")
    return x


def _labels(array: np.ndarray, path) -> np.ndarray:
    """Labels as labels of some model (their fit to this one: check_fits)."""
    if array.ndim not in (1, 2):
        raise FileError(path, f"labels must be (N,) or (N, classes), found {array.shape}")
    return array


def read_folder(folder) -> Dataset:
    folder = Path(folder)
    parts = {}
    for key, name in FILES.items():
        path = folder / name
        if not path.exists() and (folder / name[:-3]).exists():
            path = folder / name[:-3]
        parts[key] = read_idx(path) if path.exists() else None
        if parts[key] is None and key.endswith("train"):
            raise FileError(folder / name, "no such file (expected the four MNIST-style "
                                           "IDX files in this folder)")
    return _assemble(parts, {k: folder / v for k, v in FILES.items()}, str(folder))


def read_npz(path) -> Dataset:
    from ..runtime.weights import read_npz as read
    arrays = read(path)
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise FileError(path, f"missing array '{missing[0]}' (expected x_train, y_train, and "
                              f"optionally x_test, y_test)")
    parts = {k: arrays.get(k) for k in FILES}
    return _assemble(parts, {k: path for k in FILES}, str(path))


def _assemble(parts: dict, paths: dict, description: str) -> Dataset:
    out = {}
    for split in ("train", "test"):
        x, y = parts.get(f"x_{split}"), parts.get(f"y_{split}")
        if x is None and y is None:
            out[f"x_{split}"] = out[f"y_{split}"] = None
            continue
        if x is None or y is None:
            missing = "images" if x is None else "labels"
            raise FileError(paths[f"x_{split}"], f"{split} {missing} are missing")
        x = _images(np.asarray(x), paths[f"x_{split}"])
        y = _labels(np.asarray(y), paths[f"y_{split}"])
        if len(x) != len(y):
            raise FileError(paths[f"y_{split}"], f"{len(y):,} labels for {len(x):,} images")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    return Dataset(description=description, **out)


def _named_dirs(name: str) -> list[Path]:
    dirs = []
    if os.environ.get("CNNC_DATA_DIR"):
        dirs.append(Path(os.environ["CNNC_DATA_DIR"]) / name)
    from ..runtime.cache import cache_root
    dirs.append(cache_root() / "data" / name)
    dirs.append(Path("/usr/share/datasets") / name.replace("_", "-"))
    return dirs


def load(spec: str) -> Dataset:
    """A dataset by name (mnist, fashion_mnist), folder of IDX files, or .npz path."""
    if spec in SOURCES:
        for folder in _named_dirs(spec):
            if (folder / FILES["x_train"]).exists() or (folder / FILES["x_train"][:-3]).exists():
                return read_folder(folder)
        if spec == "mnist":
            return embedded_mnist()
        raise CnncError(Diagnostic(
            f"dataset '{spec}' not found (looked in " + ", ".join(map(str, _named_dirs(spec)))
            + ")", hint=f"install it (apt-get install dataset-fashion-mnist) or run "
                        f"`cnnc data fetch {spec}`"))
    path = Path(spec)
    if path.is_dir():
        return read_folder(path)
    if path.suffix == ".npz" or path.is_file():
        return read_npz(path)
    raise FileError(path, "no such file or folder")


def embedded_mnist() -> Dataset:
    x = _images(read_idx(EMBEDDED / FILES["x_test"]), EMBEDDED / FILES["x_test"])
    y = read_idx(EMBEDDED / FILES["y_test"])
    k = EMBEDDED_SPLIT
    return Dataset(x[:k], y[:k], x[k:], y[k:], "MNIST test set (embedded)",
                   note=f"full MNIST not found: using the embedded MNIST test set, "
                        f"{k:,} digits for training and {len(x) - k:,} for testing")


def check_fits(ds: Dataset, input_shape: tuple, classes: int, source: str,
               sparse: bool = False) -> None:
    """Refuse data whose images or labels do not fit the model (`classes`: its outputs;
    `sparse`: its loss reads class indices). The label rules are the API's too
    (cnnc.runtime.labels)."""
    from ..runtime.labels import LabelError, check_labels
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x is None:
            continue
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise FileError(source, f"{split} images are {x.shape[1:]}, the model expects "
                                    f"{tuple(input_shape)}")
        try:
            check_labels(y, classes, sparse)
        except LabelError as e:
            raise FileError(source, f"{split} labels {e}") from None


def fetch(name: str, dest=None, base_url: str | None = None, timeout: float = 60) -> Path:
    """Download a named dataset's four files, checking their MD5 sums; atomic per file."""
    import urllib.request

    from ..util import atomic_write_bytes
    if name not in SOURCES:
        raise CnncError(Diagnostic(f"unknown dataset '{name}' (mnist or fashion_mnist)"))
    url, sums = SOURCES[name]
    url = base_url or url
    from ..runtime.cache import cache_root
    dest = Path(dest) if dest else cache_root() / "data" / name
    for filename, md5 in sums.items():
        target = dest / filename
        if target.exists() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/" + filename, timeout=timeout) as r:
                data = r.read()
        except OSError as e:
            raise FileError(url.rstrip("/") + "/" + filename, f"download failed: {e}") from None
        digest = hashlib.md5(data).hexdigest()
        if digest != md5:
            raise FileError(url.rstrip("/") + "/" + filename,
                            f"MD5 {digest} does not match the published {md5}; nothing saved")
        atomic_write_bytes(target, data)
    return dest
