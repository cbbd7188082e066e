"""Datasets: IDX and .npz readers, named lookups, the embedded split, the downloader."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial

import numpy as np
import pytest

from cnnc import data
from cnnc.errors import CnncError, FileError


def idx_bytes(array: np.ndarray) -> bytes:
    kind = {np.uint8: 0x08}[array.dtype.type]
    return struct.pack(">HBB", 0, kind, array.ndim) + \
        struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_set(folder, n_train=20, n_test=10, size=(28, 28), gz=True, labels_off=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train,) + size, dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train + labels_off, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_test,) + size, dtype=np.uint8),
              "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for key, name in data.FILES.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / name).write_bytes(gzip.compress(raw))
        else:
            (folder / name[:-3]).write_bytes(raw)
    return arrays


def test_embedded_mnist_split(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "_named_dirs", lambda name: [tmp_path / name])
    ds = data.load("mnist")                    # no full MNIST anywhere: the embedded split
    assert ds.x_train.shape == (8000, 28, 28, 1) and ds.x_test.shape == (2000, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    assert list(ds.y_train[:8]) == [7, 2, 1, 0, 4, 1, 4, 9]        # the test set's order
    assert "8,000 digits for training and 2,000 for testing" in ds.note
    digest = hashlib.md5((data.EMBEDDED / data.FILES["x_test"]).read_bytes()).hexdigest()
    assert digest == "9fb629c4189551a2d022fa330f9573f3"


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder(tmp_path, gz):
    arrays = write_set(tmp_path / "set", gz=gz)
    ds = data.load(str(tmp_path / "set"))
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"] / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])


def test_named_dataset_from_data_dir(tmp_path, monkeypatch):
    write_set(tmp_path / "fashion_mnist")
    monkeypatch.setenv("CNNC_DATA_DIR", str(tmp_path))
    assert len(data.load("fashion_mnist").x_train) == 20


def test_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((5, 8, 8, 3), np.float32),
             y_train=np.arange(5))
    ds = data.load(str(tmp_path / "d.npz"))
    assert ds.x_train.shape == (5, 8, 8, 3) and ds.x_test is None


@pytest.mark.parametrize("defect, message", [
    ("truncated", "truncated: 15,000 bytes of data, the header promises 15,680"),
    ("magic", "not an IDX file (magic number 0x12340803)"),
    ("count", "21 labels for 20 images"),
    ("gzip", "corrupt gzip data"),
])
def test_bad_idx_files(tmp_path, defect, message):
    folder = tmp_path / "set"
    write_set(folder, labels_off=1 if defect == "count" else 0)
    target = folder / data.FILES["x_train"]
    raw = gzip.decompress(target.read_bytes())
    if defect == "truncated":
        target.write_bytes(gzip.compress(raw[:16 + 15000]))
    elif defect == "magic":
        target.write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    elif defect == "gzip":
        target.write_bytes(target.read_bytes()[:40])
    with pytest.raises(FileError) as info:
        data.load(str(folder))
    assert message in info.value.render()
    assert info.value.render().startswith(str(folder))


def test_image_size_must_fit_the_model(tmp_path):
    write_set(tmp_path / "set", size=(32, 32))
    ds = data.load(str(tmp_path / "set"))
    with pytest.raises(FileError, match=r"train images are \(32, 32, 1\), the model expects "
                                        r"\(28, 28, 1\)"):
        data.check_fits(ds, (28, 28, 1), 10, str(tmp_path / "set"))


def test_unknown_dataset_names_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "_named_dirs", lambda name: [tmp_path / name])
    with pytest.raises(CnncError, match="dataset 'fashion_mnist' not found"):
        data.load("fashion_mnist")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_fetch_checks_md5_against_a_local_server(server, tmp_path, monkeypatch):
    root, url = server
    write_set(root)
    sums = {name: hashlib.md5((root / name).read_bytes()).hexdigest()
            for name in data.FILES.values()}
    monkeypatch.setitem(data.SOURCES, "mnist", ("unused", sums))
    dest = data.fetch("mnist", tmp_path / "got", base_url=url)
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.FILES.values())
    assert len(data.load(str(dest)).x_train) == 20
    # a corrupted file on the server is refused and nothing is written
    (root / data.FILES["y_test"]).write_bytes(b"tampered")
    with pytest.raises(FileError, match="does not match the published"):
        data.fetch("mnist", tmp_path / "second", base_url=url)
    assert not (tmp_path / "second" / data.FILES["y_test"]).exists()
    # unreachable
    with pytest.raises(FileError, match="download failed"):
        data.fetch("mnist", tmp_path / "third", base_url="http://127.0.0.1:9/")
