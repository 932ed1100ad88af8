"""keras.optimizers.schedules ExponentialDecay and CosineDecay: values against Keras 3's formulas
written out, and used as learning_rate= of an optimizer, step for step against SGD by hand."""

import math

import numpy as np
import pytest

import tinygpt.nn as nn
from tinygpt.keras import optimizers
from tinygpt.keras.optimizers import schedules


def test_exponential_decay_values_smooth_and_staircase():
    smooth = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    stairs = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    for step in (0, 1, 9, 10, 15, 20, 37):
        assert smooth(step) == pytest.approx(0.1 * 0.5 ** (step / 10), rel=1e-12)
        assert stairs(step) == pytest.approx(0.1 * 0.5 ** (step // 10), rel=1e-12)


def test_cosine_decay_values_without_and_with_warmup():
    plain = schedules.CosineDecay(0.2, decay_steps=100, alpha=0.1)
    for step in (0, 25, 50, 99, 100, 250):
        t = min(step, 100) / 100
        assert plain(step) == pytest.approx(0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * t)) + 0.1), rel=1e-12)
    warm = schedules.CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)
    assert [warm(s) for s in (0, 5, 10)] == pytest.approx([0.0, 0.5, 1.0])
    assert warm(60) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warm(110) == pytest.approx(0.0, abs=1e-12) and warm(500) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("schedule", [schedules.ExponentialDecay(0.5, 3, 0.7, staircase=True),
                                      schedules.CosineDecay(0.5, 8, alpha=0.2, warmup_target=0.9,
                                                            warmup_steps=2)])
def test_schedule_as_learning_rate_sets_each_step(schedule):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    p = nn.Parameter(w0.copy())
    opt = optimizers.SGD(learning_rate=schedule).build([p])
    expected = w0.copy()
    for step in range(12):
        g = rng.standard_normal(5)
        assert opt.learning_rate == pytest.approx(schedule(step))
        p.grad = g.copy()
        opt.step()
        expected -= schedule(step) * g  # Keras: step t (from 0) uses schedule(t)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12)


def test_scheduled_learning_rate_cannot_be_set_and_bad_rates_are_named():
    opt = optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="made with learning_rate=ExponentialDecay"):
        opt.learning_rate = 0.01
    with pytest.raises(ValueError, match="learning_rate must be a number >= 0.*'fast'"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match="decay_steps must be a number > 0, got 0"):
        schedules.CosineDecay(0.1, 0)
