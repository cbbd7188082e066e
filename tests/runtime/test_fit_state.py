"""Training state across calls and interruptions: a second fit continues the first (the
optimizer's state and step count, the epoch count), a step interrupted anywhere is done
whole or not at all, and a resume is refused where it could not be exact."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import cnnc
from cnnc.errors import FileError
from cnnc.runtime.fit import CHECKPOINT, Terminated

MODEL = """
model small {{ input(6, 6, 1) conv2d(3, kernel=3, activation=relu) dropout(0.3) flatten()
              dense(4, activation=softmax) }}
train small {{ loss = sparse_categorical_crossentropy optimizer = {optimizer}
              batch_size = 8 seed = 5 }}
"""
OPTIMIZERS = ["sgd", "sgd(momentum=0.9)", "sgd(momentum=0.9, nesterov=true)", "adam",
              "adadelta(learning_rate=1.0)", "rmsprop", "rmsprop(momentum=0.5)"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((36, 6, 6, 1), dtype=np.float32), rng.integers(0, 4, 36)


def weights(model):
    return {k: v.copy() for k, v in model.params.items()}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_fits_of_one_epoch_are_one_fit_of_two(optimizer, data):
    """tf.keras keeps the optimizer (Adam's step count included) across fit calls; so does
    cnnc, and its epoch count: the second call shuffles and drops out as epoch 2 would."""
    x, y = data
    text = MODEL.format(optimizer=optimizer)
    once = cnnc.compile(text)
    once.fit(x, y, epochs=2, verbose=0)
    twice = cnnc.compile(text)
    first = twice.fit(x, y, epochs=1, verbose=0)
    second = twice.fit(x, y, epochs=1, verbose=0)
    expected, got = weights(once), weights(twice)
    for name in expected:
        assert np.array_equal(got[name], expected[name]), (optimizer, name)
    assert first.epoch == [0] and second.epoch == [1]


def _reference(text, x, y, epochs=3):
    model = cnnc.compile(text)
    model.fit(x, y, epochs=epochs, verbose=0)
    return weights(model)


# Where an interrupt lands: before or after a host function of the training step (or a
# kernel of it) runs, on its n-th call. After the update is the case that lost steps:
# the parameters had moved and the step was not counted.
POINTS = [("_train_batch", 3, "before"), ("_apply_updates", 2, "after"),
          ("_apply_updates", 5, "before"), ("adam_update_all", 6, "after"),
          ("labels_for", 3, "after"), ("step_seed", 4, "before"),
          ("dense_bias_fwd", 7, "after"), ("evaluate", 1, "after")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_anywhere_resumes_exactly(signum, data, tmp_path):
    """The signal arrives (for real, from the process itself) in the middle of a step;
    it is raised when the step is done, the checkpoint holds that step, and a resume
    ends where the uninterrupted run ends, bit for bit."""
    x, y = data
    text = MODEL.format(optimizer="adam")
    expected = _reference(text, x, y)
    for i, (function, nth, when) in enumerate(POINTS):
        model = cnnc.compile(text)
        module = model.module
        original = getattr(module, function)
        calls = [0]

        def interrupted(*args, _original=original, _nth=nth, _when=when, **kw):
            calls[0] += 1
            if calls[0] == _nth and _when == "before":
                os.kill(os.getpid(), signum)
            result = _original(*args, **kw)
            if calls[0] == _nth and _when == "after":
                os.kill(os.getpid(), signum)
            return result

        run_dir = tmp_path / f"run{i}-{signum}"
        setattr(module, function, interrupted)
        try:
            with pytest.raises(Terminated if signum == signal.SIGTERM else KeyboardInterrupt):
                model.fit(x, y, epochs=3, verbose=0, run_dir=run_dir,
                          validation_data=(x[:8], y[:8]))
        finally:
            setattr(module, function, original)
        assert (run_dir / CHECKPOINT).exists(), function
        resumed = cnnc.compile(text)
        resumed.fit(x, y, epochs=3, verbose=0, run_dir=run_dir, resume=True,
                    validation_data=(x[:8], y[:8]))
        got = weights(resumed)
        for name in expected:
            assert np.array_equal(got[name], expected[name]), (function, nth, name)


def test_resuming_mid_epoch_with_another_batch_size_is_refused(data, tmp_path):
    x, y = data
    text = MODEL.format(optimizer="adam")
    model = cnnc.compile(text)
    module = model.module
    original = module._train_batch
    calls = [0]

    def interrupted(*args, **kw):
        calls[0] += 1
        if calls[0] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kw)
    module._train_batch = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, epochs=2, verbose=0, run_dir=tmp_path)
    finally:
        module._train_batch = original
    with pytest.raises(FileError, match="at batch size 8; resume it with batch size 8"):
        cnnc.compile(text).fit(x, y, epochs=2, batch_size=4, verbose=0, run_dir=tmp_path,
                               resume=True)
    cnnc.compile(text).fit(x, y, epochs=2, verbose=0, run_dir=tmp_path, resume=True)


@pytest.mark.parametrize("meta, why", [
    ('"x"', "not a record"), ('{"epoch": "x"}', "'epoch' is 'x'"),
    ('{"epoch": 0, "batch": -3}', "'batch' is -3")])
def test_checkpoints_with_bad_metadata_are_one_clear_error(data, tmp_path, meta, why):
    x, y = data
    text = MODEL.format(optimizer="sgd")
    model = cnnc.compile(text)
    model.fit(x, y, epochs=1, verbose=0, run_dir=tmp_path)
    with np.load(tmp_path / CHECKPOINT) as f:
        arrays = {k: f[k] for k in f.files}
    import json
    good = json.loads(arrays["meta"].tobytes())
    bad = json.loads(meta)
    if isinstance(bad, dict):
        bad = dict(good, **bad)
    arrays["meta"] = np.frombuffer(json.dumps(bad).encode(), dtype=np.uint8)
    np.savez(tmp_path / CHECKPOINT, **arrays)
    with pytest.raises(FileError, match="corrupt checkpoint metadata") as e:
        cnnc.compile(text).fit(x, y, epochs=2, verbose=0, run_dir=tmp_path, resume=True)
    assert why in str(e.value)
