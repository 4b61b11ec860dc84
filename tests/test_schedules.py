"""The learning-rate schedules (`keras_dlpa.schedules`)."""

import keras
import numpy as np
import pytest
from testing import run_serialization_test

from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep


def _multistep_numpy(step, base, spe, warmup, milestones, gamma):
    if step < warmup * spe:
        return base * (step + 1) / (warmup * spe)
    epoch = step // spe
    return base * gamma ** sum(epoch >= m for m in milestones)


def test_warmup_multistep_matches_numpy_formula():
    schedule = WarmupMultiStep(0.1, 7, warmup_epochs=5, milestones=(16, 18))
    steps = np.arange(0, 7 * 20)
    got = np.array([float(schedule(s)) for s in steps])
    expected = [_multistep_numpy(s, 0.1, 7, 5, (16, 18), 0.1) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] == pytest.approx(0.1 / 35)
    assert got[34] == pytest.approx(0.1)
    assert got[16 * 7] == pytest.approx(0.01)
    assert got[18 * 7] == pytest.approx(0.001)


def test_warmup_cosine_matches_numpy_formula():
    schedule = WarmupCosine(0.5, 4, epochs=10, warmup_epochs=2)
    for step in range(0, 45):
        if step < 8:
            expected = 0.5 * (step + 1) / 8
        else:
            t = min((step - 8) / 32, 1.0)
            expected = 0.25 * (1 + np.cos(np.pi * t))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)


def test_schedule_serialises_and_drives_the_optimizer():
    schedule = WarmupMultiStep(0.2, 3, warmup_epochs=1, milestones=(2,))
    run_serialization_test(schedule)
    run_serialization_test(WarmupCosine(0.1, 5, epochs=4, warmup_epochs=1))
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    optimizer.iterations.assign(7)
    assert float(optimizer.learning_rate) == pytest.approx(0.02)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="milestones"):
        WarmupMultiStep(0.1, 10, milestones=(5, 3))
    with pytest.raises(ValueError, match="steps_per_epoch"):
        WarmupMultiStep(0.1, 0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        WarmupCosine(0.1, 10, epochs=3, warmup_epochs=4)
