"""`keras_dlpa.checks`: the shared argument checks."""

import math

import numpy as np
import pytest

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number

pytestmark = pytest.mark.core


def test_check_int():
    assert check_int("n", 3) == 3 and check_int("n", np.int64(2)) == 2
    assert check_int("n", 0, minimum=0) == 0
    assert check_int("n", None, allow_none=True) is None
    for bad in (0, 1.5, True, "3", None, math.nan):
        with pytest.raises(ValueError, match=r"`n` must be an integer >= 1"):
            check_int("n", bad)


def test_check_number():
    assert check_number("lr", 0.1) == 0.1
    assert check_number("m", 0, 0.0, 1.0, closed=True) == 0.0
    for bad in (0.0, -1, math.inf, math.nan, "x", True, 2.0):
        with pytest.raises(ValueError, match=r"`lr` must be a finite number"):
            check_number("lr", bad, 0.0, 1.0)


def test_check_choice():
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode=.c."):
        check_choice("mode", "c", ("a", "b"))
