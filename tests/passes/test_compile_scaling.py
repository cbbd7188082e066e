"""Compiling grows linearly with the model: the work (Python function calls, counted by
cProfile -- deterministic, unlike time) of twice the layers is about twice the work.

Found quadratic before: sink_views rebuilt the graph once per moved op (a chain of
activations behind flatten), and the code generator's Namer tried every earlier number
for each new local.
"""

from __future__ import annotations

import cProfile
import pstats

import pytest

from cnnc.compiler import lower


def calls(text: str) -> int:
    profile = cProfile.Profile()
    profile.enable()
    lower(text).source()
    profile.disable()
    return pstats.Stats(profile).total_calls


@pytest.mark.parametrize("layer, head", [("activation(relu)", "flatten()"),
                                         ("activation(tanh)", ""),
                                         ("dense(4, activation=relu)", "flatten()")])
def test_twice_the_layers_is_twice_the_work(layer, head):
    def model(n):
        return (f"model deep {{ input(2, 2, 1) {head} " + " ".join([layer] * n) +
                " }\ntrain deep { loss = mse optimizer = sgd }")
    small, large = calls(model(300)), calls(model(600))
    assert large / small < 2.3, (small, large)
