"""Fuzzing the parser and checker: any input gives a program or diagnostics, never a
traceback or a hang.

Two generators: seeded mutations of the example files (character and token edits), and
hypothesis strategies over the grammar's tokens. CI runs 2,000+ inputs; `--long` runs
100,000.
"""

from __future__ import annotations

import random
import signal
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnc.errors import CnncError
from cnnc.frontend.checker import check, decode
from conftest import EXAMPLES

SOURCES = [p.read_text() for p in sorted(EXAMPLES.glob("*.cnn"))]
TOKENS = ["model", "train", "residual", "input", "conv2d", "dense", "maxpool2d", "avgpool2d",
          "flatten", "dropout", "batchnorm", "activation", "global_avgpool2d", "relu",
          "softmax", "leaky_relu", "kernel", "strides", "padding", "same", "valid", "name",
          "alpha", "loss", "optimizer", "adam", "sgd", "true", "false", "(", ")", "{", "}",
          "[", "]", ",", "=", "#", '"', "\n", " ", "0", "1", "3", "-1", "2.5", "1e-7",
          "1e400", "99999999999999999999", '"x"', "é", "\\", "'", "@", "\t", "\x00"]
TIME_LIMIT_S = 5


@contextmanager
def time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise TimeoutError(f"no result after {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_cleanly(text: str) -> None:
    """`text` must check or fail with diagnostics that all carry a position or a file."""
    with time_limit(TIME_LIMIT_S):
        try:
            check(text, "fuzz.cnn")
        except CnncError as e:
            assert e.diagnostics
            rendered = e.render()
            assert rendered.startswith("fuzz.cnn")
            assert "Traceback" not in rendered


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(text) + 1)
        if kind == 0 and text:                       # delete a span
            text = text[:pos] + text[pos + rng.randint(1, 8):]
        elif kind == 1:                              # insert a token
            text = text[:pos] + rng.choice(TOKENS) + text[pos:]
        elif kind == 2:                              # duplicate a line
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == 3 and text:                     # replace a character
            text = text[:pos] + chr(rng.randrange(32, 0x250)) + text[pos + 1:]
        elif kind == 4:                              # change a number
            text = text.replace(rng.choice("0123456789"), rng.choice(["0", "-3", "100000", "1.5"]),
                                1)
        else:                                        # swap two lines
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def run_mutations(count: int, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(count):
        text = mutate(rng, rng.choice(SOURCES))
        try:
            check_cleanly(text)
        except Exception as e:
            raise AssertionError(f"input #{i} (seed {seed}) failed with "
                                 f"{type(e).__name__}: {e}\n--- input ---\n{text}") from e


def test_mutations_of_the_examples():
    run_mutations(1600, seed=20261125)


@pytest.mark.long
def test_mutations_long():
    run_mutations(100_000, seed=1)


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup(tokens):
    check_cleanly(" ".join(tokens))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    with time_limit(TIME_LIMIT_S):
        try:
            check(decode(data, "fuzz.cnn"), "fuzz.cnn")
        except CnncError:
            pass


def test_deep_nesting_and_long_lines_are_refused_or_handled():
    for text in ["model m { input(4,4,1) " + "residual { " * 5000 + "}" * 5000 + " }",
                 "model m { input(4,4,1) dense(" + "(" * 100000 + ")",
                 "model m { input(4,4,1) flatten() " + "dropout(0.1) " * 10000 + "}",
                 "model m { input(4,4,1) flatten() dense(2, name=\"" + "a" * 1_000_000 + "\") }",
                 "model m { input(4,4,1) " + "x" * 1_000_000 + " }"]:
        check_cleanly(text)
